"""A loopback TCP proxy that records Kafka frames. Requests and responses are paired by
correlation id (acks=0 produce requests get none). For each (api key, version, client) the
first few request/response pairs are written as files:
    <out>/<client>/<key>-<name>-v<version>-<n>.req   (frame without its size prefix)
    <out>/<client>/<key>-<name>-v<version>-<n>.resp
Usage: recording_proxy.py LISTEN_PORT UPSTREAM_PORT OUT_DIR CLIENT_LABEL
"""
import asyncio
import os
import struct
import sys

KEEP_PER_KIND = 2


class Recorder:
    def __init__(self, out_dir, label):
        self.dir = os.path.join(out_dir, label)
        os.makedirs(self.dir, exist_ok=True)
        self.counts = {}

    def save(self, request, response):
        key, version = struct.unpack(">hh", request[:4])
        kind = (key, version)
        n = self.counts.get(kind, 0)
        if n >= KEEP_PER_KIND:
            return
        self.counts[kind] = n + 1
        base = os.path.join(self.dir, f"{key:02d}-v{version}-{n}")
        with open(base + ".req", "wb") as f:
            f.write(request)
        if response is not None:
            with open(base + ".resp", "wb") as f:
                f.write(response)


async def read_frame(reader):
    size = struct.unpack(">i", await reader.readexactly(4))[0]
    return await reader.readexactly(size)


# librdkafka 2.0.2 (kcat) cannot skip the multi-byte tagged fields some brokers put in
# ApiVersions v3 responses; with --downgrade-apiversions the proxy answers v1+ itself with
# UNSUPPORTED_VERSION (KIP-511), so the client retries with v0, which the broker answers.
DOWNGRADE = "--downgrade-apiversions" in sys.argv


async def pipe_requests(reader, writer, pending, recorder, client_writer):
    try:
        while True:
            frame = await read_frame(reader)
            key, version, correlation = struct.unpack(">hhi", frame[:8])
            if DOWNGRADE and key == 18 and version >= 1:
                body = struct.pack(">ihihhh", correlation, 35, 1, 18, 0, 0)
                recorder.save(frame, None)
                client_writer.write(struct.pack(">i", len(body)) + body)
                await client_writer.drain()
                continue
            acks_zero = False
            if key == 0:
                # Produce: acks sits after the (nullable) transactional id for v3+.
                try:
                    pos = 8
                    client_len = struct.unpack(">h", frame[pos:pos + 2])[0]
                    pos += 2 + max(client_len, 0)
                    if version >= 9:
                        # header v2 tagged fields (assume none), then compact nullable string
                        pos += 1
                        n = frame[pos]
                        pos += 1 + max(n - 1, 0)
                    elif version >= 3:
                        tl = struct.unpack(">h", frame[pos:pos + 2])[0]
                        pos += 2 + max(tl, 0)
                    acks_zero = struct.unpack(">h", frame[pos:pos + 2])[0] == 0
                except Exception:
                    pass
            if acks_zero:
                recorder.save(frame, None)
            else:
                pending[correlation] = frame
            writer.write(struct.pack(">i", len(frame)) + frame)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def pipe_responses(reader, writer, pending, recorder):
    try:
        while True:
            frame = await read_frame(reader)
            correlation = struct.unpack(">i", frame[:4])[0]
            request = pending.pop(correlation, None)
            if request is not None:
                recorder.save(request, frame)
            writer.write(struct.pack(">i", len(frame)) + frame)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    listen, upstream, out_dir, label = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    recorder = Recorder(out_dir, label)

    async def handle(client_reader, client_writer):
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", upstream)
        pending = {}
        await asyncio.gather(pipe_requests(client_reader, server_writer, pending, recorder, client_writer),
                             pipe_responses(server_reader, client_writer, pending, recorder))

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    print(f"recording {label}: 127.0.0.1:{listen} -> {upstream}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
