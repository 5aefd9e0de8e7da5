"""A ZeroMQ peer for the ember-zeromq tests, driven over stdin/stdout.

    python publisher.py xpub|push PORT

binds an XPUB (a PUB that reports subscriptions) or a PUSH socket on 127.0.0.1:PORT (a free
port when PORT is 0) and prints `ready PORT`. Each stdin line is a message: its frames, hex-encoded and separated by tabs; the
publisher sends it and prints `sent`. With XPUB, each subscription a subscriber sends is printed
as `sub <hex topic>`. An empty line or the end of stdin ends it.
"""
import binascii
import os
import sys

import zmq

mode, port = sys.argv[1], int(sys.argv[2])
ctx = zmq.Context()
sock = ctx.socket(zmq.XPUB if mode == "xpub" else zmq.PUSH)
sock.setsockopt(zmq.LINGER, 2000)
if port == 0:
    port = sock.bind_to_random_port("tcp://127.0.0.1")
else:
    sock.bind(f"tcp://127.0.0.1:{port}")
print("ready", port, flush=True)

poller = zmq.Poller()
poller.register(sys.stdin.fileno(), zmq.POLLIN)
if mode == "xpub":
    poller.register(sock, zmq.POLLIN)
pending = b""
while True:
    for what, _ in poller.poll():
        if what is sock:
            msg = sock.recv()
            if msg[:1] == b"\x01":
                print("sub", binascii.hexlify(msg[1:]).decode(), flush=True)
            continue
        chunk = os.read(sys.stdin.fileno(), 1 << 20)
        if not chunk:
            sys.exit(0)
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if not line:
                sys.exit(0)
            sock.send_multipart([binascii.unhexlify(f) for f in line.split(b"\t")])
            print("sent", flush=True)
