"""Size on the wire of one READING with a 15-character QR tag, against compact JSON of the same
fields and the same body in a signed MAVLink 2 frame. Last line: name=value figures."""

import json

from _wire import QR, mavlink_frame, mavlink_sender, reading, reading_body, reading_frame


def main():
    r = reading()
    frame = reading_frame(r)
    body = reading_body(r)
    fields = r.as_dict()
    fields["tag"] = QR.decode()  # the text as text, as a JSON producer would write it
    fields.pop("boot")
    fields.pop("uptime_ms")
    fields["mac"] = frame[-18:-2].hex()  # the record is authenticated in every form compared
    js = json.dumps(fields, separators=(",", ":")).encode()
    mavlink, mav = mavlink_sender()
    mv2 = mavlink_frame(mavlink, mav, body)
    assert mv2[0] == 0xFD and mv2[2] & 0x01, "not a signed MAVLink 2 frame"
    print("READING body %d bytes; frame = 3 header + %d body + 16 MAC + 2 CRC" % (len(body), len(body)))
    print("JSON: " + js.decode())
    print("MAVLink 2 DATA64, signed: 10 header + %d payload + 2 CRC + 13 signature (6-byte "
          "SHA-256 truncation)" % (len(mv2) - 25))
    print("reading_frame_bytes=%d json_bytes=%d mavlink2_signed_bytes=%d goal_le_64=%s"
          % (len(frame), len(js), len(mv2), "yes" if len(frame) <= 64 else "no"))


if __name__ == "__main__":
    main()
