"""One simulated transaction (one key): its events at their true times, and what it means.

Scenarios build a :class:`Txn` by calling its small verbs (``request``, ``outcome``,
``authorization``, ``money`` ...) in the order things happen. Every event keeps its
*true* time in integer milliseconds on the accurate (acquirer/issuer) clock; the
terminal's skew is applied only when the event is encoded, so scenario code can reason
about "the issuer answered 4 s after the terminal gave up" without clocks in the way.

The optional ISO 8583 fields an event carries (rrn, auth_code, response_code, outcome,
reason, approved) are rendered into a JSON fragment right here, once, because the verb
knows which of them a real message of that kind has.
"""

from __future__ import annotations

from typing import Final

from models.alerts import Cause, Kind
from streams.simulator.fleet import Card, Terminal

TERMINAL: Final = "terminal"
ISSUER: Final = "issuer"

# Rendered tails of the approved messages, shared by the verbs and scenarios._sale.
APPROVED_AUTHORIZATION: Final = ',"response_code":"00","approved":true'
APPROVED_OUTCOME: Final = ',"response_code":"00","outcome":"approved"'

Ev = tuple[int, bool, str, int, str, str]
"""One event: ``(at, by_terminal, type, amount, detail, extra)``.

``at`` is the true time in ms, ``by_terminal`` says which side emits it, ``type`` is
the contract's, ``detail`` is what the verdict needs beyond the type (the terminal
``outcome``, or ``"approved"``/``"declined"`` for an authorization) and ``extra`` the
rendered optional fields. A plain tuple: the hot loop unpacks millions of them."""


class Txn:
    """A transaction key with its events and the alerts the scenario means it to raise."""

    __slots__ = (
        "amount",
        "auth_code",
        "card",
        "events",
        "expected",
        "issuer_shift_ms",
        "paid_again",
        "refs",
        "rrn",
        "scenario",
        "stan",
        "t0",
        "terminal",
        "terminal_end",
    )

    def __init__(
        self,
        scenario: str,
        terminal: Terminal,
        card: Card,
        stan: str,
        t0: int,
        amount: int,
        rrn: str,
        auth_code: str,
    ) -> None:
        self.scenario = scenario
        self.terminal = terminal
        self.card = card
        self.stan = stan
        self.t0 = t0  # the request's true time == transmitted_at (stamped by the host)
        self.amount = amount  # what the terminal shows
        self.rrn = rrn
        self.auth_code = auth_code
        self.refs = f',"rrn":"{rrn}","auth_code":"{auth_code}"'  # approved messages carry both
        self.events: list[Ev] = []
        self.expected: dict[Kind, Cause] = {}
        self.paid_again = False
        self.issuer_shift_ms = 0  # a late issuer feed delays this key's issuer events
        self.terminal_end = t0  # the terminal's last event: it is busy until then

    # -- terminal side -----------------------------------------------------------------

    def request(self, amount: int | None = None) -> None:
        """The terminal sends the sale (at ``t0``, the host's transmission time)."""
        value = self.amount if amount is None else amount
        self.events.append((self.t0, True, "request", value, "", ""))

    def outcome(self, at: int, outcome: str, reason: str = "", response_code: str = "") -> None:
        """What the terminal showed. A timed-out terminal never got the host's references."""
        if outcome == "approved":
            extra = self.refs + APPROVED_OUTCOME
        elif outcome == "timeout":
            extra = ',"outcome":"timeout"'
        else:
            extra = f',"rrn":"{self.rrn}"'
            if response_code:
                extra += f',"response_code":"{response_code}"'
            extra += f',"outcome":"{outcome}"'
        if reason:
            extra += f',"reason":"{reason}"'
        self.events.append((at, True, "outcome", self.amount, outcome, extra))
        if at > self.terminal_end:
            self.terminal_end = at

    def terminal_reversal(self, at: int, reason: str) -> None:
        self.events.append((at, True, "reversal", self.amount, "", f',"reason":"{reason}"'))
        if at > self.terminal_end:
            self.terminal_end = at

    # -- issuer side -------------------------------------------------------------------

    def authorization(
        self, at: int, approved: bool, response_code: str = "00", amount: int | None = None
    ) -> None:
        value = self.amount if amount is None else amount
        if approved and response_code == "00":
            extra = self.refs + APPROVED_AUTHORIZATION
        elif approved:
            extra = f'{self.refs},"response_code":"{response_code}","approved":true'
        else:
            extra = f',"rrn":"{self.rrn}","response_code":"{response_code}","approved":false'
        detail = "approved" if approved else "declined"
        self.events.append((at, False, "authorization", value, detail, extra))

    def issuer(self, kind: str, at: int, amount: int | None = None) -> None:
        """A money movement: ``hold``, ``hold_release``, ``debit``, ``reversal``, ``refund``."""
        value = self.amount if amount is None else amount
        # Hold and debit carry the approval code; the others only the reference.
        extra = self.refs if kind in ("debit", "hold") else f',"rrn":"{self.rrn}"'
        self.events.append((at, False, kind, value, "", extra))

    def money(self, at: int, amount: int | None = None) -> None:
        """The issuer takes the money the card's way: a debit (0200) or a hold (0100)."""
        kind = "hold" if self.card.dual_message else "debit"
        self.events.append(
            (at, False, kind, self.amount if amount is None else amount, "", self.refs)
        )

    # -- meaning -----------------------------------------------------------------------

    def expect(self, kind: Kind, cause: Cause) -> None:
        self.expected[kind] = cause

    def has(self, kind: str) -> bool:
        """Has the issuer sent an event of this ``type`` for the key?"""
        return any(not by_terminal and type_ == kind for _, by_terminal, type_, *_ in self.events)
