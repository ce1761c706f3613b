# Flash journal: store and forward of signed READING frames, append-only, power-cut safe.
#
# Directory layout (path/):
#   seg.00000001 ...   segments, appended in order; only the newest one is ever written
#   ack                ack log: 6-byte entries (u32 W, CRC-16), W = "every record with seq <= W
#                      has been acknowledged by the bridge"; the largest valid entry counts
#   *.tmp              files being created (segments, ack log rewrite): deleted at open
#
# Segment = 18-byte header + records. Header: b"TWJ\x01", u32 segment number, u32 seq and 4-byte
# chain head BEFORE this segment, CRC-16 of those 16 bytes. A segment is created complete (temp
# file + rename) so its header is never torn; the head it carries is what keeps the sequence
# number and the hash-chain head alive after every older record was acknowledged and deleted.
#
# Record = the frame without its SOF byte: LEN TYPE BODY MAC CRC (LEN + 20 bytes; 63 bytes for a
# 64-byte READING). The frame's own CRC-16 (computed with the constant SOF in front) is the
# record's checksum and LEN is its length, so a record costs one byte less than the frame and the
# station re-emits the exact signed bytes (SOF + record) without recomputing anything.
#
# Commit points: append = write + flush (+ os.fsync where it exists; on littlefs flush/close is
# the commit: MicroPython's flush() is lfs_file_sync) of one record at the end of the newest
# segment: no file is ever rewritten per reading. The newest segment stays open for appending
# between appends (no path string, file object or littlefs cache buffer per reading); it is
# closed before a new segment is created, before a failed write is cut back, and by close().
# ack = one 6-byte append to the ack log; a segment is deleted once every record in it
# is acknowledged (the newest is kept). The ack log is replaced (temp + rename) when it passes
# 512 bytes (its length is kept in RAM: no stat per ack).
#
# Rare work lives in twstation.jrecover, imported for it and forgotten again: opening, a new
# segment, the ack log's rewrite, deleting acknowledged segments, refused or failed appends.
#
# Recovery at open (twstation.jrecover): leftover temp files are
# deleted; every record of every segment is checked (length, CRC, increasing seq); a torn
# record at the end of the newest segment (the only place a write can be interrupted) is cut
# off by copying the valid prefix (temp + rename) and counted in `recovered` (bytes) /
# `discarded` (records). Anything else invalid raises JournalCorrupt and
# nothing is deleted: a technician looks at it.
#
# Acknowledgements: the bridge may acknowledge out of order (several readings in flight, one
# lost). Those seqs are kept in RAM (at most 32) until the oldest pending record is acknowledged,
# then W jumps over them. After a power cut such out-of-order acks, or an ack whose log entry was
# torn, are forgotten and those readings are sent again: harmless, the bridge dedupes by
# (device, seq) and acknowledges the same bytes again. A reading is never deleted before its ack.
#
# Full: the journal never overwrites unsent readings. append() raises JournalFull when the record
# does not fit in capacity_bytes (all segments, headers included); `nearly_full` goes up at
# warn_pct so the operator is warned well before. With N segments a partly acknowledged oldest
# segment holds at most 1/N of the capacity.
import os

from twproto.crc import crc16
from twproto.port import const
from twstation.errors import StationError

_SOF = const(0xA1)
_NACK = const(0x12)
_MAX_BODY = const(232)
_EXTRA = const(20)  # record length = LEN + 20 (LEN, TYPE, MAC 16, CRC 2)
_HDR = const(18)
_ACK_ENTRY = const(6)  # an ack log entry: u32 W, CRC-16
_ACK_MAX = 512  # not const: the power-cut test lowers it to cut the ack-log rewrite too
_X_MAX = const(32)
_CHUNK = const(512)
_TYPICAL = const(63)  # record of a synced READING with a 15-byte tag (64-byte frame)
# A segment in RAM is a list [number, size in bytes, records, seq of its last record (the seq
# before it while empty)]: a list instead of a small class (firmware/MEMORY.md).
_NO = const(0)
_SIZE = const(1)
_COUNT = const(2)
_LAST = const(3)


class JournalError(StationError):
    pass


# No caller tells "full" or "corrupt" apart from any other journal error (the station refuses
# the reading either way; a corrupt journal stops the boot with its message): one class, the
# message says which (a class costs ~122 bytes of heap, a name ~26; firmware/MEMORY.md).
JournalFull = JournalCorrupt = JournalError


class OsFs:
    """The file system the journal uses by default: builtin open + os (littlefs on the ESP32)."""

    def __getattr__(self, name):  # listdir, remove, rename, mkdir (jrecover): os's own
        return getattr(os, name)  # (one method instead of four staticmethod entries)

    def open(self, path, mode):  # a def, not staticmethod(open): keeps open()'s typing
        return open(path, mode)

    def sync(self, f):
        f.flush()
        s = getattr(os, "fsync", None)  # CPython: flush is not durable; littlefs: flush is
        if s is not None:
            s(f.fileno())



def _u32(b, i):
    return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)


def _cold(name, *args):
    """jrecover.<name>(*args), then forget jrecover again: the journal's rare work (opening, a
    new segment, the ack log's rewrite, compaction, a refused or failed append) is not kept in
    the station's heap (twstation.COLD)."""
    from twstation import forget, jrecover

    r = getattr(jrecover, name)(*args)
    forget(("twstation.jrecover",))
    return r


class Journal:
    """Journal(path, capacity_bytes, fs=None, warn_pct=80, segments=8)

    append(frame), pending(after=0), frame(seq), ack(seq), head(), backlog(), fill_pct(), full,
    nearly_full, capacity (typical READINGs that fit), recovered, discarded, close()."""

    # set by twstation.jrecover.open (annotations only: no code on MicroPython)
    path: str  # the directory, without a trailing "/"
    fs: "OsFs"  # the file system (tests pass a fake one)
    capacity_bytes: int
    seg_max: int  # bytes per segment, header included
    capacity: int  # typical READINGs that fit
    warn_pct: int
    recovered: int  # bytes of a torn tail cut off at open
    discarded: int  # records cut off at open (0 or 1)
    chain: bytearray  # first 4 bytes of the last READING's MAC (the hash-chain head)
    # Private attribute names reuse names the app already interns (each distinct name costs
    # heap once: firmware/MEMORY.md), hence the comments:
    _w: int  # W: every seq <= W is acknowledged (the ack log's value)
    _hold: set  # seqs acknowledged out of order, held until W reaches them (at most 32)
    _s: list  # the segments, oldest first: [number, size, count, last seq] (_NO, _SIZE, ...)
    _start: "tuple | None"  # (segment index, offset, length, seq) of the oldest pending record
    _end: "tuple | None"  # (segment number, offset, seq) of the record pending() saw last
    _n: int  # records pending (not yet acknowledged, out-of-order acks included)
    _len: int  # bytes in all segments, headers included
    _alen: int  # bytes in the ack log (_ACK_MAX if there is none yet: the first ack creates it)
    last_seq: int

    def __init__(self, path, capacity_bytes, fs=None, warn_pct=80, segments=8):
        # boot only: checks the sizes, sets the attributes, recovers. jrecover is forgotten
        # with the boot's other COLD modules (not here: a reopen would import it again)
        from twstation import jrecover

        self._f = None  # the newest segment, open for appending once the first append came
        jrecover.open(self, path, capacity_bytes, fs, warn_pct, segments)

    # -- paths and small files ---------------------------------------------------------------------

    def _segp(self, n):
        return "%s/seg.%08d" % (self.path, n)  # one literal of >= 10 chars: not interned

    def _read_at(self, path, off, n):
        f = self.fs.open(path, "rb")
        try:
            f.seek(off)
            return f.read(n)
        finally:
            f.close()

    # -- state -------------------------------------------------------------------------------------

    def head(self):
        """(last seq, first 4 bytes of the last READING's MAC): survives power loss and
        compaction (b'\\0\\0\\0\\0' before the first reading)."""
        return self.last_seq, bytes(self.chain)

    def backlog(self):
        """Readings not yet acknowledged."""
        return self._n - len(self._hold)

    def fill_pct(self):
        return self._len * 100 // self.capacity_bytes

    def _over(self, n):
        """n more bytes (plus a segment header if they start a new segment) would not fit."""
        if self._s[-1][_SIZE] + n > self.seg_max:
            n += _HDR
        return self._len + n > self.capacity_bytes

    @property
    def full(self):
        """No room for one more typical READING: the station refuses new readings."""
        return self._over(_TYPICAL)

    @property
    def nearly_full(self):
        return self.fill_pct() >= self.warn_pct

    def close(self):
        """Close the newest segment's append handle (every record is already committed)."""
        f = self._f
        if f is not None:
            self._f = None
            f.close()

    # -- append ------------------------------------------------------------------------------------

    def append(self, frame):
        """Store one signed frame (bytes, bytearray or memoryview: SOF LEN TYPE BODY MAC CRC)
        durably. Raises JournalFull (nothing written) or JournalError (bad frame)."""
        n = len(frame)
        rl = n - 1  # record length
        ok = (n >= 25 and frame[0] == _SOF and frame[1] <= _MAX_BODY and rl == frame[1] + _EXTRA
              and frame[2] != _NACK)
        if ok:
            c = crc16(frame, 0, n - 2)
            seq = _u32(frame, 3)
            ok = (frame[n - 2] == (c & 0xFF) and frame[n - 1] == (c >> 8) and seq > self.last_seq
                  and not self._over(rl))
        if not ok:  # rare: jrecover finds which check failed and words the error
            raise _cold("refused", self, frame)
        seg = self._s[-1]
        if seg[_SIZE] + rl > self.seg_max:
            seg = _cold("rotate", self, seg)  # a new segment (every seg_max bytes: rare)
        fs = self.fs
        f = self._f
        try:
            if f is None:
                f = self._f = fs.open(self._segp(seg[_NO]), "ab")
            f.write((frame if type(frame) is memoryview else memoryview(frame))[1:n])
            fs.sync(f)  # committed: durable before the station sends it
        except OSError:
            # the file system refused part of the write: jrecover cuts back to the last good
            # record so the next append does not follow garbage
            raise _cold("failed", self, seg)
        if self._start is None:
            self._start = (len(self._s) - 1, seg[_SIZE], rl, seq)
        seg[_SIZE] += rl
        self._len += rl
        seg[_COUNT] += 1
        seg[_LAST] = seq
        self._n += 1
        self.last_seq = seq
        c = self.chain
        for i in range(4):
            c[i] = frame[n - 18 + i]

    # -- reading back ------------------------------------------------------------------------------

    def pending(self, n=0):
        """Unacknowledged frames (SOF + record bytes) in order, oldest first, seq > n.
        Reads the flash in small batches and holds no file open between yields. Sending in
        order with pending(last seq sent) costs one small read per call: the position of
        the last record visited is remembered."""
        cur = self._start
        if cur is None:
            return
        idx = cur[0]
        off = cur[1]
        segs = list(self._s)  # acks during the iteration may compact the list
        h = self._end
        if h is not None and cur[3] <= h[2] <= n:
            for i in range(idx, len(segs)):
                if segs[i][_NO] == h[0]:
                    idx = i
                    off = h[1]
                    break
        while idx < len(segs):
            s = segs[idx]
            p = self._segp(s[_NO])
            while off < s[_SIZE]:
                want = s[_SIZE] - off
                try:
                    b = self._read_at(p, off, _CHUNK if want > _CHUNK else want)
                except OSError:
                    return  # compacted away meanwhile: everything in it was acknowledged
                pos = 0
                while pos < len(b) and pos + b[pos] + _EXTRA <= len(b):
                    k = b[pos] + _EXTRA
                    seq = _u32(b, pos + 2)
                    self._end = (s[_NO], off + pos, seq)
                    if seq > n and seq > self._w and seq not in self._hold:
                        yield b"\xa1" + b[pos : pos + k]
                    pos += k
                if pos == 0:  # a record longer than what was read cannot happen: stop safely
                    return
                off += pos
            idx += 1
            off = _HDR

    def frame(self, seq):
        """The pending frame with this seq, or None."""
        for fr in self.pending(seq - 1):
            return fr if _u32(fr, 3) == seq else None
        return None

    # -- acknowledgement ---------------------------------------------------------------------------

    def ack(self, seq):
        """The bridge has this reading on disk. Returns True if it was pending."""
        cur = self._start
        if cur is None or seq <= self._w or seq > self.last_seq or seq in self._hold:
            return False
        if seq != cur[3]:
            if len(self._hold) < _X_MAX:
                self._hold.add(seq)
            return True
        w = seq
        self._n -= 1
        cur = self._next(cur)
        while cur is not None and cur[3] in self._hold:
            self._hold.remove(cur[3])
            w = cur[3]
            self._n -= 1
            cur = self._next(cur)
        self._start = cur
        # persist the new low-water mark W: one 6-byte append to the ack log, or a rewrite
        # (temp + rename) once the log has grown to _ACK_MAX
        self._w = w
        p = self.path + "/ack"
        b = w.to_bytes(4, "little")
        c = crc16(b)
        b += bytes((c & 0xFF, c >> 8))  # an entry: W and its CRC-16
        rewrite = self._alen >= _ACK_MAX  # every ~85 acks, or no ack log yet
        if not rewrite:
            fs = self.fs
            f = fs.open(p, "ab")
            try:
                f.write(b)
                fs.sync(f)
            finally:
                f.close()
            self._alen += _ACK_ENTRY
        s = self._s[0]
        if rewrite or len(self._s) > 1 and (s[_COUNT] == 0 or s[_LAST] <= w):
            # the ack log's rewrite, or the oldest segment is all acknowledged (once per
            # segment): jrecover rewrites the log and deletes acknowledged segments
            _cold("acked", self, p, b, rewrite)
        return True

    def _next(self, v):
        idx, off, n, _ = v
        off += n
        segs = self._s
        while idx < len(segs):
            s = segs[idx]
            if off < s[_SIZE]:
                b = self._read_at(self._segp(s[_NO]), off, 6)
                return (idx, off, b[0] + _EXTRA, _u32(b, 2))
            idx += 1
            off = _HDR
        return None
