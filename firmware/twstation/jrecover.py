# Opening a flash journal (twstation.journal): listing, the ack log, the scan of every record,
# the cut-back of a torn tail; and the journal's rare writes: a new segment (every seg_max
# bytes), the ack log's rewrite (every ~85 acks), deleting acknowledged segments, the cut-back
# of a failed write. Imported for those and forgotten afterwards (twstation.COLD), so this code
# does not stay in the station's heap. The layout and the recovery rules are described in journal.py.
from twproto.crc import crc16
from twproto.port import const
from twstation import journal as J

# The same numbers as journal.py's (inlined there; tests/firmware/test_journal.py checks them).
_NACK = const(0x12)
_MAX_BODY = const(232)
_EXTRA = const(20)
_HDR = const(18)
_ACK_ENTRY = const(6)
_CHUNK = const(512)
_CRC_SOF = const(0x443B)
_SOF = const(0xA1)
_TYPICAL = const(63)  # record of a synced READING with a 15-byte tag (64-byte frame)
_NO = const(0)  # a segment is [number, size, records, last seq] (journal.py)
_SIZE = const(1)
_COUNT = const(2)
_LAST = const(3)


def open(j, path, capacity_bytes, fs, warn_pct, segments):  # noqa: A001 (the builtin is not used)
    """Journal.__init__: check the sizes, set the attributes, list, recover, rebuild the in-RAM
    index."""
    j.path = path.rstrip("/")
    j.fs = fs = fs if fs is not None else J.OsFs()
    j.capacity_bytes = capacity_bytes
    j.seg_max = capacity_bytes // segments
    if segments < 2 or j.seg_max < _HDR + 255:
        raise J.JournalError("journal: capacity too small for %d segments" % segments)
    j.capacity = (j.seg_max - _HDR) // _TYPICAL * segments
    j.warn_pct = warn_pct
    j.recovered = 0
    j.discarded = 0
    j.chain = bytearray(4)
    try:
        names = fs.listdir(j.path)
    except OSError:
        fs.mkdir(j.path)
        names = []
    nos = []
    for name in names:
        if name.endswith(".tmp"):
            fs.remove(j.path + "/" + name)
        elif name.startswith("seg.") and len(name) == 12:
            nos.append(int(name[4:]))
    nos.sort()
    j._w = _load_acks(j, "ack" in names)
    j._hold = set()
    j._s = []
    j._start = None  # the attributes are described in Journal's class body
    j._end = None
    j._n = 0
    j.last_seq = 0
    j.chain[0:4] = bytes(4)
    for i in range(len(nos)):
        _scan(j, nos[i], i == len(nos) - 1)
    if not j._s:
        if j._w:
            raise J.JournalCorrupt("journal: acknowledged readings but no segment")
        # the first segment, written as Journal.append writes the next ones
        j._len = 0
        rotate(j, [0, 0, 0, 0])
    j._len = 0
    for s in j._s:
        j._len += s[_SIZE]
    compact(j)


def _with_crc(b):
    """b followed by its CRC-16, little-endian (ack log entries, segment headers)."""
    c = crc16(b)
    return b + bytes((c & 0xFF, c >> 8))


def _load_acks(j, exists):
    j._alen = J._ACK_MAX  # no ack log: the first ack creates it (temp + rename)
    if not exists:
        return 0
    f = j.fs.open(j.path + "/ack", "rb")
    try:
        data = f.read(J._ACK_MAX + 64 * _ACK_ENTRY)
    finally:
        f.close()
    w = 0
    j._alen = len(data)
    clean = len(data) % _ACK_ENTRY == 0
    for i in range(0, len(data) - _ACK_ENTRY + 1, _ACK_ENTRY):
        c = crc16(data, i, i + 4)
        if data[i + 4] == (c & 0xFF) and data[i + 5] == (c >> 8):
            v = J._u32(data, i)
            if v > w:
                w = v
        else:
            clean = False
    if not clean:  # a torn entry: rewrite so later appends stay aligned
        write_new(j, j.path + "/ack", _with_crc(w.to_bytes(4, "little")))
        j._alen = _ACK_ENTRY
    return w


def _scan(j, v, newest):  # v: the segment's number
    p = j._segp(v)
    f = j.fs.open(p, "rb")
    try:
        size = f.seek(0, 2)  # the file's length
        f.seek(0)
        h = f.read(_HDR)
        if (len(h) != _HDR or h[0:4] != b"TWJ\x01" or J._u32(h, 4) != v
                or crc16(h, 0, 16) != h[16] | (h[17] << 8)):
            raise J.JournalCorrupt("journal: " + p + ": bad segment header")
        prev = J._u32(h, 8)
        if j._s:
            if prev != j.last_seq:
                raise J.JournalCorrupt("journal: " + p + ": does not follow seq "
                                       + str(j.last_seq))
        else:
            j.last_seq = prev
            j.chain[0:4] = h[12:16]
        seg = [v, _HDR, 0, prev]
        idx = len(j._s)
        buf = b""
        off = _HDR  # file offset of buf[0]
        pos = 0
        bad = None
        while True:
            if len(buf) - pos < 1 or len(buf) - pos < buf[pos] + _EXTRA:
                more = f.read(_CHUNK)
                if not more:
                    if pos < len(buf):
                        bad = "torn"
                    break
                buf = buf[pos:] + more
                off += pos
                pos = 0
                continue
            n = buf[pos] + _EXTRA
            if buf[pos] > _MAX_BODY or buf[pos] < 4 or buf[pos + 1] == _NACK:
                bad = "bad length or type"
                break
            # The record's CRC is the frame's: over SOF + its first n-2 bytes (twproto.crc's
            # function, whatever its table: an inlined copy of its loop broke when the table
            # changed)
            c = crc16(buf, pos, pos + n - 2, _CRC_SOF)
            if buf[pos + n - 2] != (c & 0xFF) or buf[pos + n - 1] != (c >> 8):
                bad = "bad CRC"
                break
            seq = buf[pos + 2] | (buf[pos + 3] << 8) | (buf[pos + 4] << 16) | (buf[pos + 5] << 24)
            if seq <= j.last_seq:
                bad = "seq does not increase"
                break
            seg[_COUNT] += 1
            seg[_LAST] = seq
            j.last_seq = seq
            m = pos + n - 18  # first 4 bytes of the MAC
            j.chain[0:4] = buf[m : m + 4]
            if seq > j._w:
                j._n += 1
                if j._start is None:
                    j._start = (idx, off + pos, n, seq)
            pos += n
        seg[_SIZE] = off + pos
    finally:
        f.close()
    if bad is not None:
        # Only the end of the newest segment can hold an interrupted write; and only if
        # what follows the last good record is a single incomplete or unreadable record.
        if not newest or (bad != "torn" and size - seg[_SIZE] > buf[pos] + _EXTRA):
            raise J.JournalCorrupt("journal: " + p + ": " + bad + " at byte " + str(seg[_SIZE]))
    if size > seg[_SIZE]:
        truncate(j, p, seg[_SIZE])
        j.recovered += size - seg[_SIZE]
        j.discarded += 1
    j._s.append(seg)


def truncate(j, path, n):
    """Keep the first n bytes of path (recovery only: copy, then rename over)."""
    fs = j.fs
    tmp = path + ".tmp"
    src = fs.open(path, "rb")
    try:
        dst = fs.open(tmp, "wb")
        try:
            left = n
            while left > 0:
                b = src.read(_CHUNK if left > _CHUNK else left)
                if not b:
                    break
                dst.write(b)
                left -= len(b)
            fs.sync(dst)
        finally:
            dst.close()
    finally:
        src.close()
    fs.rename(tmp, path)


def write_new(j, path, data):
    """Create `path` holding `data` atomically: temp file, sync, rename."""
    tmp = path + ".tmp"
    fs = j.fs
    f = fs.open(tmp, "wb")
    try:
        f.write(data)
        fs.sync(f)
    finally:
        f.close()
    fs.rename(tmp, path)


def rotate(j, seg):
    """Start the segment after `seg` (the newest): closes the append handle, creates the new
    segment complete (header = magic, number, seq and chain head before it, CRC-16) and
    returns its entry, now the newest."""
    j.close()
    no = seg[_NO] + 1
    write_new(j, j._segp(no), _with_crc(
        b"TWJ\x01" + no.to_bytes(4, "little") + j.last_seq.to_bytes(4, "little") + j.chain))
    seg = [no, _HDR, 0, j.last_seq]
    j._s.append(seg)
    j._len += _HDR
    return seg


def compact(j):
    """Delete every segment but the newest whose records are all acknowledged."""
    segs = j._s
    while len(segs) > 1 and (segs[0][_COUNT] == 0 or segs[0][_LAST] <= j._w):
        s = segs[0]
        j.fs.remove(j._segp(s[_NO]))
        j._len -= s[_SIZE]
        segs.pop(0)
        if j._start is not None:
            c = j._start
            j._start = (c[0] - 1, c[1], c[2], c[3])


def acked(j, path, entry, rewrite):
    """Journal.ack's rare part: replace the ack log by its one new entry (when it has grown to
    _ACK_MAX), then delete the segments that are all acknowledged."""
    if rewrite:
        write_new(j, path, entry)
        j._alen = _ACK_ENTRY
    compact(j)


def refused(j, frame):
    """The error for a frame Journal.append refuses (the first check that fails, in order)."""
    n = len(frame)
    if n < 25 or frame[0] != _SOF or frame[1] > _MAX_BODY or n != frame[1] + _EXTRA + 1:
        return J.JournalError("journal: not a frame")
    if frame[2] == _NACK:
        return J.JournalError("journal: unauthenticated frame")
    c = crc16(frame, 0, n - 2)
    if frame[n - 2] != (c & 0xFF) or frame[n - 1] != (c >> 8):
        return J.JournalError("journal: bad frame CRC")
    seq = J._u32(frame, 3)
    if seq <= j.last_seq:
        return J.JournalError("journal: seq " + str(seq) + " not above " + str(j.last_seq))
    return J.JournalFull("journal full: " + str(j.backlog()) + " readings not sent")


def failed(j, seg):
    """The file system refused part of an append to `seg` (the newest segment): close the
    append handle (reopened by the next append) and cut the file back to its last good record,
    so the next append does not follow garbage. Returns the error append raises."""
    try:
        j.close()
    except OSError:
        j._f = None
    truncate(j, j._segp(seg[_NO]), seg[_SIZE])
    return J.JournalError("journal: write failed")
