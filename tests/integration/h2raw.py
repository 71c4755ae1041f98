"""A raw HTTP/2 client for hostile-client tests.

It speaks just enough HTTP/2 (RFC 9113) and HPACK (RFC 7541: literal header
fields, no Huffman coding, no table) to open gRPC streams the way no
well-behaved client would: resetting them at once, dropping the connection
with streams open, granting no flow-control window, or sending garbage.

    c = Connection(port, window=1)       # a reader that never grants window
    sid = c.open_stream("/docq.v1.DocQueue/WatchStatus", request_bytes)
    c.reset(sid)
    c.frames_of(RST_STREAM)              # what the server sent back
    c.wait_closed(10)                    # True once the server hung up
"""
import socket
import struct
import threading
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
CANCEL, REFUSED_STREAM = 0x8, 0x7


def frame(kind, flags, stream, payload=b""):
    """One HTTP/2 frame."""
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def hpack_int(value, prefix_bits, first=0):
    """An HPACK integer with a prefix of prefix_bits bits (RFC 7541 5.1)."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out, value = [first | limit], value - limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_string(s):
    b = s if isinstance(s, bytes) else s.encode()
    return hpack_int(len(b), 7) + b


def header_block(headers):
    """Literal header fields without indexing, new names (RFC 7541 6.2.2)."""
    return b"".join(b"\x00" + hpack_string(n) + hpack_string(v) for n, v in headers)


def grpc_headers(path, extra=()):
    return header_block([(":method", "POST"), (":scheme", "http"), (":path", path),
                         (":authority", "localhost"), ("content-type", "application/grpc"),
                         ("te", "trailers")] + list(extra))


def grpc_message(payload, compressed=False):
    """A gRPC length-prefixed message."""
    return bytes([1 if compressed else 0]) + struct.pack(">I", len(payload)) + payload


class Connection:
    """One raw connection to 127.0.0.1:port. A thread reads what the server
    sends, answers its SETTINGS and PINGs (else it would hang up on us) and
    counts every frame, but never sends WINDOW_UPDATE: with window (the
    initial stream window announced) small, the server can send next to
    nothing, as to the slowest reader there is."""

    def __init__(self, port, window=65535, preface=True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.next_id = 1
        self.lock = threading.Lock()
        self.frames = []              # (type, flags, stream, payload) in arrival order
        self.settings_acked = threading.Event()
        self.closed = threading.Event()
        # The preface first: the reader answers the server's SETTINGS, which
        # must not reach the server before it.
        if preface:
            self.send(PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", SETTINGS_INITIAL_WINDOW_SIZE, window)))
        self.reader = threading.Thread(target=self._read_loop, daemon=True)
        self.reader.start()

    def send(self, data):
        """Send bytes; False when the server has hung up already."""
        try:
            with self.lock:
                self.sock.sendall(data)
            return True
        except OSError:
            return False

    def open_stream(self, path, message=None, end_stream=True, extra=()):
        """Open a stream calling path, with a request message (bytes) if
        given; end_stream=False leaves the request side open. Returns the
        stream id."""
        sid, self.next_id = self.next_id, self.next_id + 2
        data = frame(HEADERS, END_HEADERS | (END_STREAM if message is None and end_stream else 0), sid,
                     grpc_headers(path, extra))
        if message is not None:
            data += frame(DATA, END_STREAM if end_stream else 0, sid, grpc_message(message))
        self.send(data)
        return sid

    def reset(self, sid):
        self.send(frame(RST_STREAM, 0, sid, struct.pack(">I", CANCEL)))

    def frames_of(self, kind):
        return [f for f in list(self.frames) if f[0] == kind]

    def wait_closed(self, timeout):
        return self.closed.wait(timeout)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except socket.timeout:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf

    def _read_loop(self):
        while True:
            head = self._recv_exact(9)
            if head is None:
                break
            length = int.from_bytes(head[:3], "big")
            kind, flags, sid = head[3], head[4], struct.unpack(">I", head[5:])[0] & 0x7FFFFFFF
            payload = self._recv_exact(length) if length else b""
            if payload is None:
                break
            self.frames.append((kind, flags, sid, payload))
            if kind == SETTINGS and not flags & ACK:
                self.send(frame(SETTINGS, ACK, 0))
            elif kind == SETTINGS:
                self.settings_acked.set()
            elif kind == PING and not flags & ACK:
                self.send(frame(PING, ACK, 0, payload))
        self.closed.set()


def wait_until(cond, timeout):
    """Poll cond() for up to timeout seconds; its last value."""
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.02)
    return cond()
