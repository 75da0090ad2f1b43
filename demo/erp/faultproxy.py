"""A TCP proxy in front of a networked ERP database (PostgreSQL, MariaDB) that injects faults.

The knobs are those of the REST systems (`demo.faults.Faults`): `latency_ms` is added once per round
trip (before the first bytes of each answer, so a statement costs it once however large its result),
`error_rate` is the share of new connections dropped at once, and `outage` refuses new connections and
cuts open ones. Run `python -m demo.erp.faultproxy --listen 127.0.0.1:15432 --upstream 127.0.0.1:5432
--latency-ms 5 --admin-port 15433` and point the gateway's ERP URL at the listen address; the admin port
takes `POST /admin/faults` like the REST systems.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from demo.faults import Faults

CHUNK = 64 * 1024


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1", port: int = 0,
                 faults: Faults | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = port
        self.faults = faults or Faults()
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self.cut_all()
            await self._server.wait_closed()

    def set_outage(self, outage: bool) -> None:
        self.faults.outage = outage
        if outage:
            self.cut_all()

    def cut_all(self) -> None:
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        faults = self.faults
        faults.requests += 1
        if faults.outage or (faults.error_rate and faults.rng.random() < faults.error_rate):
            client_w.transport.abort()
            return
        try:
            server_r, server_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.transport.abort()
            return
        self._open.update((client_w, server_w))
        asked = asyncio.Event()  # the client sent something the server has not answered yet
        try:
            await asyncio.gather(self._pipe(client_r, server_w, asked, delay=False),
                                 self._pipe(server_r, client_w, asked, delay=True))
        finally:
            for writer in (client_w, server_w):
                self._open.discard(writer)
                writer.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, asked: asyncio.Event, *,
                    delay: bool) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(CHUNK):
                if self.faults.outage:
                    return
                if not delay:
                    asked.set()
                elif asked.is_set() and self.faults.latency_ms:
                    asked.clear()
                    await asyncio.sleep(self.faults.latency_ms / 1000)
                writer.write(data)
                await writer.drain()
        writer.transport.abort()


async def _main(args: argparse.Namespace) -> None:
    listen_host, listen_port = args.listen.rsplit(":", 1)
    upstream_host, upstream_port = args.upstream.rsplit(":", 1)
    faults = Faults(latency_ms=args.latency_ms, error_rate=args.drop_rate)
    proxy = FaultProxy(upstream_host, int(upstream_port), host=listen_host, port=int(listen_port), faults=faults)
    await proxy.start()
    print(f"fault proxy {args.listen} -> {args.upstream} ({faults.knobs()})", flush=True)
    if args.admin_port:
        import uvicorn
        from starlette.applications import Starlette

        from demo.faults import admin_routes
        from demo.secrets import load_or_create

        app = Starlette(routes=admin_routes(faults, load_or_create().admin_key, lambda: None))
        server = uvicorn.Server(uvicorn.Config(app, host=listen_host, port=args.admin_port, log_level="warning"))
        await server.serve()
    else:
        await asyncio.Event().wait()
    await proxy.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="TCP fault proxy for the sample ERP database.")
    parser.add_argument("--listen", default="127.0.0.1:15432")
    parser.add_argument("--upstream", default="127.0.0.1:5432")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--drop-rate", type=float, default=0.0)
    parser.add_argument("--admin-port", type=int, default=0)
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
