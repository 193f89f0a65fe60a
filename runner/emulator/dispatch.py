"""The app the server serves: admin routes, then the provider mounted at the request's prefix.

Every provider's routes go through the same checks, in this order: the API key, then the
fault dice (a 429, 503 or reset is decided before any state changes), then the route itself,
then the `slow` delay, then the hostile faults, which distort the reply
(runner.emulator.hostile). Doing this here, once, is what makes a fault switch mean the same
thing whichever provider a client talks to. Admin routes (`/_emulator/*`) skip keys and
faults so tests can always steer the emulator.

A path belongs to the mount with the longest prefix it starts with; the root mount ("")
takes every path no other claims, so its provider also shapes the errors of admin routes and
of paths nothing serves.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping

from runner.emulator import hostile
from runner.emulator.admin import Admin
from runner.emulator.faults import Fault
from runner.emulator.messages import Reply, Request
from runner.emulator.provider import Provider, Route, Shared, route
from runner.emulator.wire import ApiError


class Dispatcher:
    """Answers requests for every mounted provider; safe to call from many threads at once."""

    def __init__(self, shared: Shared, mounts: Mapping[str, Provider]) -> None:
        if "" not in mounts:
            raise ValueError("a provider must be mounted at the root")
        for prefix in mounts:
            if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
                raise ValueError(f"mount prefix {prefix!r} must start with / and not end with /")
        self._shared = shared
        self._mounts = sorted(mounts.items(), key=lambda mount: len(mount[0]), reverse=True)
        admin = Admin(shared.clock, shared.dice, shared.stats, self.holdings)
        self._admin = [
            route("GET", "/_emulator/faults", admin.get_faults),
            route("POST", "/_emulator/faults", admin.set_faults),
            route("POST", "/_emulator/clock", admin.advance_clock),
            route("GET", "/_emulator/stats", admin.get_stats),
        ]

    def holdings(self) -> dict[str, int]:
        """What every provider holds, for `/_emulator/stats`."""
        counts: dict[str, int] = {}
        for _, provider in reversed(self._mounts):
            counts.update(provider.holdings())
        return counts

    def close(self) -> None:
        """Stop every provider's background work; called once no requests arrive."""
        for _, provider in self._mounts:
            provider.close()

    def handle(self, request: Request) -> Reply:
        prefix, provider = self._mount(request.path)
        try:
            for admin in self._admin:
                params = admin.match(request)
                if params is not None:
                    return admin.handler(request, params)
            local = _mounted(request, prefix)
            for api in provider.routes:
                params = api.match(local)
                if params is not None:
                    return self._serve(provider, api, local, params)
            raise ApiError("NOT_FOUND", f"No route for {request.method} {request.path}.")
        except ApiError as error:
            return provider.error_reply(error)

    def refuse(self, path: str, error: ApiError) -> Reply:
        return self._mount(path)[1].error_reply(error)

    def _mount(self, path: str) -> tuple[str, Provider]:
        for prefix, provider in self._mounts:
            if not prefix or path == prefix or path.startswith(prefix + "/"):
                return prefix, provider
        raise AssertionError("the root mount takes every path")

    def _serve(
        self, provider: Provider, api: Route, request: Request, params: dict[str, str]
    ) -> Reply:
        stats, dice = self._shared.stats, self._shared.dice
        stats.count("requests_served")
        if api.needs_key:
            provider.authorize(request)
        faults = dice.faults
        fault = dice.roll()
        if fault is Fault.RESET:
            stats.count("faults_reset")
            return Reply(drop=True)
        shapes = provider.shapes
        try:
            if fault is Fault.RATE_LIMITED:
                stats.count("faults_429")
                raise provider.rate_limited(faults.retry_after)
            if fault is Fault.UNAVAILABLE:
                stats.count("faults_503")
                raise provider.unavailable()
            reply = api.handler(hostile.first_page(request, faults, shapes), params)
        except ApiError as error:
            reply = provider.error_reply(error)
        if (delay := faults.slow) and not reply.drop:
            time.sleep(delay)
        return reply if reply.drop else hostile.distort(request, reply, faults, shapes)


def _mounted(request: Request, prefix: str) -> Request:
    """The request as a provider mounted at `prefix` sees it: served from the root."""
    if not prefix:
        return request
    path = request.path[len(prefix):] or "/"
    return dataclasses.replace(request, path=path, base_url=request.base_url + prefix)
