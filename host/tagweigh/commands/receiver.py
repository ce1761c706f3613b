"""`tagweigh receiver`: run the reference receiver (an example backend) on this machine."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keys", required=True,
                        help="device keys exported for the receiver (KeyRegistry.export_keys), mode 0600")
    parser.add_argument("--db", default="receiver.sqlite3", help="SQLite file for received records")
    parser.add_argument("--listen", default="127.0.0.1:8600", help="HOST:PORT (default 127.0.0.1:8600)")
    parser.add_argument("--token-file", help="require this bearer token (file holding it)")
    parser.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (chain)")
    parser.add_argument("--tls-key", help="... and this PEM private key")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")


def run(args: argparse.Namespace) -> int:
    import ssl
    from pathlib import Path

    from tagweigh.errors import ConfigError
    from tagweigh.receiver import ReceiverStore, load_keys, make_server

    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--listen must be HOST:PORT, got {args.listen!r}")
    token = Path(args.token_file).read_text().strip() if args.token_file else None
    ctx = None
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
    store = ReceiverStore(args.db, load_keys(args.keys))
    server = make_server(store, host, int(port), token=token, ssl_context=ctx, verbose=args.verbose)
    print(f"tagweigh receiver: {server.url}/v1/batches (EPCIS: {server.url}/epcis/capture), "
          f"storing to {args.db}; Ctrl-C stops", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        store.close()
    return 0
