"""Per-address request rate limits as the spec (certstream-server-rust) chains them: a
sliding window, then a token bucket, then a burst allowance; and a bounded table of them for
one process.

The rule (:class:`RateRule`), per client address and per HTTP request (stream connects, API
calls, health checks, requests for unknown paths; never messages on an open stream):

1. **Sliding window.**  At most ``window_max`` requests in any ``window_secs`` seconds.  A
   request the window refuses is not counted; one it lets through is counted even if the
   bucket then refuses it (the spec does the same).
2. **Token bucket.**  ``max_tokens`` tokens, refilled at ``refill_rate`` per second; a
   request takes one.
3. **Burst.**  When the bucket is empty, up to ``burst`` more requests per
   ``burst_window_secs`` (the count restarts when that window has passed).

So an address may make ``max_tokens + burst`` requests at once, then ``refill_rate`` per
second (plus ``burst`` every ``burst_window_secs``), and never more than ``window_max`` per
``window_secs``.

The state of one address is a flat list of floats (see the ``ST_*`` indices), so that the
same functions serve the in-process table here and the table the workers share in memory
(``certstream.shell.sharedlimits``).  The sliding window is kept as ``WINDOW_SLOTS`` counts
of sub-windows of ``window_secs / (WINDOW_SLOTS - 1)`` seconds, not one timestamp per
request (that would be ``window_max`` floats per address): the counted span is at least
``window_secs`` and at most one sub-window longer, so the limit is never exceeded and a
request may be refused up to one sub-window early.

A state that has refilled completely (full bucket, no burst used, nothing counted in the
window) behaves exactly like a new one: :func:`is_idle` tells, so tables can drop or reuse it
without changing any answer.

Sans-IO: time is passed in (a monotonic clock in seconds, the same for every process of
the server: Linux's CLOCK_MONOTONIC is system-wide); nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

__all__ = [
    "DEFAULT_MAX_KEYS",
    "STATE_LEN",
    "WINDOW_SLOTS",
    "RateLimiter",
    "RateRule",
    "check",
    "fresh_state",
    "is_idle",
    "retry_after_header",
]

#: Addresses remembered at most by one ``RateLimiter``: ~250 bytes each, ~16 MB when full.
DEFAULT_MAX_KEYS = 65536
#: Sub-window counts of the sliding window (the current one included).
WINDOW_SLOTS = 16

# Indices into a state list.
ST_TOKENS = 0  # tokens in the bucket at ST_REFILLED
ST_REFILLED = 1  # when the tokens were counted
ST_BURST_USED = 2  # burst requests used since the burst window started
ST_BURST_RESET = 3  # when the burst count starts again
ST_WINDOW_SLOT = 4  # the newest sub-window index whose count is kept
ST_COUNTS = 5  # WINDOW_SLOTS counts, sub-window i at ST_COUNTS + i % WINDOW_SLOTS
STATE_LEN = ST_COUNTS + WINDOW_SLOTS
#: Tolerance for a whole token: a client that waits exactly the time it was told is let in,
#: whatever the float rounding of ``elapsed * refill_rate``.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class RateRule:
    """The limits of one address (``rate_limit.*`` settings; the defaults are the spec's)."""

    max_tokens: float = 100.0
    refill_rate: float = 10.0
    burst: float = 20.0
    burst_window_secs: float = 10.0
    window_secs: float = 60.0
    window_max: int = 1000

    def __post_init__(self) -> None:
        if not (self.max_tokens >= 1 and self.refill_rate > 0 and self.burst >= 0
                and self.burst_window_secs > 0 and self.window_secs > 0
                and self.window_max >= 1):
            raise ValueError(f"not a usable rate rule: {self!r}")

    @property
    def slot_secs(self) -> float:
        return self.window_secs / (WINDOW_SLOTS - 1)


def fresh_state(rule: RateRule, now: float) -> list[float]:
    """The state of an address never seen (or idle): a full bucket, nothing counted."""
    state = [0.0] * STATE_LEN
    state[ST_TOKENS] = rule.max_tokens
    state[ST_REFILLED] = now
    state[ST_BURST_RESET] = now + rule.burst_window_secs
    state[ST_WINDOW_SLOT] = float(math.floor(now / rule.slot_secs))
    return state


def _roll(rule: RateRule, state: list[float], now: float) -> int:
    """Forget the sub-windows that left the window; the current sub-window's index."""
    current = math.floor(now / rule.slot_secs)
    last = int(state[ST_WINDOW_SLOT])
    if current > last:
        for slot in range(last + 1, min(current, last + WINDOW_SLOTS) + 1):
            state[ST_COUNTS + slot % WINDOW_SLOTS] = 0.0
        state[ST_WINDOW_SLOT] = float(current)
        return current
    return last  # a clock that went backwards keeps counting in the newest sub-window


def _window_wait(rule: RateRule, state: list[float], current: int, now: float) -> float:
    """Seconds until enough of the oldest sub-windows leave for one more request."""
    remaining = sum(state[ST_COUNTS:])
    for slot in range(current - WINDOW_SLOTS + 1, current + 1):
        remaining -= state[ST_COUNTS + slot % WINDOW_SLOTS]
        if remaining < rule.window_max:
            return max((slot + WINDOW_SLOTS) * rule.slot_secs - now, 1e-3)
    return rule.window_secs  # pragma: no cover - the loop always ends below the limit


def check(rule: RateRule, state: list[float], now: float) -> float:
    """Count one request against ``state`` (updated in place): 0.0 when it may proceed, else
    the seconds (> 0) until it would be allowed."""
    current = _roll(rule, state, now)
    if sum(state[ST_COUNTS:]) >= rule.window_max:
        return _window_wait(rule, state, current, now)
    state[ST_COUNTS + current % WINDOW_SLOTS] += 1.0
    tokens = state[ST_TOKENS]
    if now > state[ST_REFILLED]:  # a clock that went backwards adds nothing
        tokens = min(rule.max_tokens, tokens + (now - state[ST_REFILLED]) * rule.refill_rate)
        state[ST_REFILLED] = now
    else:
        tokens = min(rule.max_tokens, tokens)  # a reload may have lowered max_tokens
    if tokens >= 1.0 - _EPSILON:
        state[ST_TOKENS] = max(0.0, tokens - 1.0)
        return 0.0
    state[ST_TOKENS] = tokens
    if now >= state[ST_BURST_RESET]:
        state[ST_BURST_USED] = 0.0
        state[ST_BURST_RESET] = now + rule.burst_window_secs
    if state[ST_BURST_USED] < rule.burst:
        state[ST_BURST_USED] += 1.0
        return 0.0
    wait = (1.0 - tokens) / rule.refill_rate
    if rule.burst >= 1:
        wait = min(wait, state[ST_BURST_RESET] - now)
    return max(wait, 1e-3)


def is_idle(rule: RateRule, state: list[float], now: float) -> bool:
    """Whether ``state`` answers every future request exactly as a fresh state would (so
    it may be forgotten).  Reads ``state`` only."""
    refilled = state[ST_TOKENS] + max(0.0, now - state[ST_REFILLED]) * rule.refill_rate
    if refilled < rule.max_tokens:
        return False
    if state[ST_BURST_USED] > 0 and now < state[ST_BURST_RESET]:
        return False
    current = math.floor(now / rule.slot_secs)
    last = int(state[ST_WINDOW_SLOT])
    return current - last >= WINDOW_SLOTS or not any(state[ST_COUNTS:])


class RateLimiter:
    """The states of the addresses one process has seen, at most ``max_keys`` of them.

    The least recently seen address is forgotten first when the table is full; a forgotten
    address starts again with a full bucket, so the bound trades memory for a flood of
    distinct addresses being able to reset each other.  Idle states are forgotten for free
    (see :func:`is_idle`).  The rule is passed on every call, so a config reload changes the
    limits without forgetting anyone: a bucket keeps its tokens, capped at the new size.
    """

    __slots__ = ("_states", "max_keys")

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, not {max_keys!r}")
        self.max_keys = max_keys
        self._states: OrderedDict[str, list[float]] = OrderedDict()

    def check(self, key: str, rule: RateRule, now: float) -> float:
        """Count one request from ``key`` at ``now``: 0.0 when it may proceed, else the
        seconds (> 0) until it would be allowed."""
        states = self._states
        state = states.get(key)
        if state is None:
            if len(states) >= self.max_keys:
                states.popitem(last=False)  # the least recently seen address
            state = states[key] = fresh_state(rule, now)
        else:
            states.move_to_end(key)
        return check(rule, state, now)

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, key: object) -> bool:
        return key in self._states


def retry_after_header(wait: float) -> bytes:
    """``Retry-After`` is whole seconds (RFC 9110 §10.2.3): round up, so a client that waits
    exactly that long is let in, and never say 0 to a refused client."""
    return str(max(1, math.ceil(wait))).encode("ascii")
