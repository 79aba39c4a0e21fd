"""Field checks of one detail record, shared by the 346 reader and JSON what-if positions.

``check_detail`` turns the text fields of a record into the typed row of a ``PositionBatch`` or
raises ``RecordRejected`` (reason, field, value); warnings are appended to a list. Decisions
(documented in the README's 346 section):

* dates are accepted as CCYYMMDD, CYYMMDD (C=0 for 19xx, 1 for 20xx) or YYMMDD (20xx), and in CSV
  also as YYYY-MM-DD or MM/DD/YYYY;
* ASCII numbers carry implied decimals (strike 5.4, market value 6.6) unless they contain a '.';
* a zero quantity is rejected (``ZERO_QUANTITY``: a requirement needs non-zero quantities);
  negative quantities are rejected (use S);
* a market value on a row that is not a stock is ignored with a warning (``MARKET_VALUE_IGNORED``).
"""

from __future__ import annotations

import re
from datetime import date

from engine.pmc.positions.model import (
    ACCOUNT_TYPES,
    BAD_VALUE,
    BASKET_IGNORED,
    MARKET_VALUE_IGNORED,
    MISSING_FIELD,
    OPTION_TYPES,
    SECURITY_TYPES,
    STRIKE_IGNORED,
    WARNING,
    ZERO_QUANTITY,
    PositionProblem,
    firm_id,
)

MAX_QUANTITY = 999_999_999
_SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9./#^-]{0,20}$")
_ACCOUNT_RE = re.compile(r"^[\x20-\x7e]{0,20}$")
_DECIMAL_RE = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)$")
_INT_RE = re.compile(r"^[+]?\d+$")


class RecordRejected(Exception):
    """A record that fails a field check: reason code, field, offending value, message."""

    def __init__(self, reason: str, field_name: str | None, value: str | None, message: str):
        super().__init__(message)
        self.reason = reason
        self.field = field_name
        self.value = value
        self.message = message


def parse_date(text: str, field_name: str, *, iso_allowed: bool = True) -> str:
    """A 346 date in any accepted form -> 'YYYY-MM-DD'; '' for blank or all zeros."""
    t = text.strip()
    if not t or set(t) == {"0"}:
        return ""
    y: int
    m: int
    d: int
    try:
        if t.isdigit() and len(t) == 8:
            y, m, d = int(t[:4]), int(t[4:6]), int(t[6:])
        elif t.isdigit() and len(t) == 7:
            if t[0] not in "01":
                raise ValueError
            y, m, d = 1900 + 100 * int(t[0]) + int(t[1:3]), int(t[3:5]), int(t[5:])
        elif t.isdigit() and len(t) == 6:
            y, m, d = 2000 + int(t[:2]), int(t[2:4]), int(t[4:])
        elif iso_allowed and len(t) == 10 and t[4] == "-" and t[7] == "-":
            y, m, d = int(t[:4]), int(t[5:7]), int(t[8:])
        elif iso_allowed and len(t) == 10 and t[2] == "/" and t[5] == "/":
            m, d, y = int(t[:2]), int(t[3:5]), int(t[6:])
        else:
            raise ValueError
        return date(y, m, d).isoformat()
    except ValueError:
        raise RecordRejected(
            BAD_VALUE, field_name, text, f"{field_name}={text!r} is not a date (CCYYMMDD)"
        ) from None


def _decimal(text: str, field_name: str, implied_decimals: int = 0) -> float:
    t = text.strip()
    if not t:
        return 0.0
    if "." not in t and implied_decimals and t.isdigit():
        return float(int(t)) / float(10**implied_decimals)
    if not _DECIMAL_RE.match(t):
        raise RecordRejected(
            BAD_VALUE, field_name, text, f"{field_name}={text!r} is not a non-negative number"
        )
    return float(t)


def _quantity(text: str) -> int:
    t = text.strip()
    if not t:
        raise RecordRejected(MISSING_FIELD, "NET POSITION", text, "NET POSITION is empty")
    if t.endswith(".0") or t.endswith(".00"):
        t = t.split(".", 1)[0]
    if not _INT_RE.match(t):
        raise RecordRejected(
            BAD_VALUE,
            "NET POSITION",
            text,
            f"NET POSITION={text!r} is not a non-negative whole number (use FUNCTION S for shorts)",
        )
    q = int(t)
    if q > MAX_QUANTITY:
        raise RecordRejected(BAD_VALUE, "NET POSITION", text, f"NET POSITION={text!r} is too large")
    return q


def check_detail(
    *,
    line: int,
    firm: str,
    account: str,
    put_call: str,
    symbol: str,
    exercise_style: str,
    settlement_style: str,
    series_date: str,
    expiration_date: str,
    strike: str,
    function: str,
    security_type: str,
    market_value: str,
    net_position: str,
    account_type: str,
    basket_id: str,
    implied: tuple[int, int] = (0, 0),
    default_firm: str | None = None,
    warnings: list[PositionProblem] | None = None,
    allow_zero: bool = False,
) -> dict[str, object]:
    """Validate the text fields of one detail record: the typed row, or raise RecordRejected.

    ``implied`` is the number of implied decimals of strike and market value (ASCII: 4 and 6).
    Warnings are appended to ``warnings``. ``allow_zero`` accepts a zero net position (a
    position being edited, not yet computed).
    """
    warn = warnings if warnings is not None else []
    firm_t = firm.strip()
    if not firm_t and default_firm:
        firm_t = default_firm
    if not firm_t:
        raise RecordRejected(
            MISSING_FIELD, "CLEARING FIRM NUMBER", firm, "CLEARING FIRM NUMBER is empty"
        )
    if not firm_t.isdigit() or len(firm_t) > 5:
        raise RecordRejected(
            BAD_VALUE,
            "CLEARING FIRM NUMBER",
            firm,
            f"CLEARING FIRM NUMBER={firm!r} is not a number of up to 5 digits",
        )
    firm_n = firm_id(firm_t)
    account_t = account.strip()
    if not _ACCOUNT_RE.match(account_t):
        raise RecordRejected(
            BAD_VALUE, "ACCOUNT ID", account, f"ACCOUNT ID={account!r} is not valid"
        )
    sectype = security_type.strip().upper()
    if not sectype:
        raise RecordRejected(
            MISSING_FIELD, "SECURITY TYPE CODE", security_type, "SECURITY TYPE CODE is empty"
        )
    if sectype not in SECURITY_TYPES:
        raise RecordRejected(
            BAD_VALUE,
            "SECURITY TYPE CODE",
            security_type,
            f"SECURITY TYPE CODE={security_type!r} is not one of O, I, F, S, W, X",
        )
    sym = symbol.strip().upper()
    if not sym:
        raise RecordRejected(MISSING_FIELD, "SYMBOL", symbol, "SYMBOL is empty")
    if not _SYMBOL_RE.match(sym):
        raise RecordRejected(
            BAD_VALUE, "SYMBOL", symbol, f"SYMBOL={symbol!r} is not a trading symbol"
        )
    pc = put_call.strip().upper()
    if sectype in OPTION_TYPES:
        if not pc:
            raise RecordRejected(
                MISSING_FIELD,
                "PUT/CALL INDICATOR",
                put_call,
                f"PUT/CALL INDICATOR is required for security type {sectype}",
            )
        if pc not in ("C", "P") or (sectype == "W" and pc != "C"):
            allowed = "C" if sectype == "W" else "C or P"
            raise RecordRejected(
                BAD_VALUE,
                "PUT/CALL INDICATOR",
                put_call,
                f"PUT/CALL INDICATOR={put_call!r} must be {allowed} for security type {sectype}",
            )
    elif pc:
        raise RecordRejected(
            BAD_VALUE,
            "PUT/CALL INDICATOR",
            put_call,
            f"PUT/CALL INDICATOR={put_call!r} must be blank for security type {sectype}",
        )
    ex = exercise_style.strip().upper()
    if ex not in ("", "A", "E"):
        raise RecordRejected(
            BAD_VALUE, "EXERCISE STYLE", exercise_style, f"EXERCISE STYLE={exercise_style!r}"
        )
    st = settlement_style.strip().upper()
    if st not in ("", "O", "C"):
        raise RecordRejected(
            BAD_VALUE,
            "SETTLEMENT STYLE",
            settlement_style,
            f"SETTLEMENT STYLE={settlement_style!r} is not O or C",
        )
    series = parse_date(series_date, "SERIES/CONTRACT DATE")
    if not series and sectype in ("O", "I", "F", "W"):
        raise RecordRejected(
            MISSING_FIELD,
            "SERIES/CONTRACT DATE",
            series_date,
            f"SERIES/CONTRACT DATE is required for security type {sectype}",
        )
    expiry = parse_date(expiration_date, "EXPIRATION DATE")
    strike_v = _decimal(strike, "STRIKE PRICE", implied[0])
    if sectype in OPTION_TYPES:
        if strike_v <= 0:
            raise RecordRejected(
                BAD_VALUE,
                "STRIKE PRICE",
                strike,
                f"STRIKE PRICE={strike!r} must be positive for an option",
            )
    elif strike_v != 0.0:
        warn.append(
            PositionProblem(
                line,
                WARNING,
                STRIKE_IGNORED,
                "STRIKE PRICE",
                strike,
                f"STRIKE PRICE={strike!r} ignored for security type {sectype}",
            )
        )
        strike_v = 0.0
    if sectype in ("S", "X"):
        series = ""
    func = function.strip().upper()
    if not func:
        raise RecordRejected(MISSING_FIELD, "FUNCTION", function, "FUNCTION is empty")
    if func not in ("L", "S"):
        raise RecordRejected(
            BAD_VALUE, "FUNCTION", function, f"FUNCTION={function!r} is not L or S"
        )
    mv = _decimal(market_value, "MARKET VALUE", implied[1])
    qty = _quantity(net_position)
    acct = account_type.strip().upper()
    if not acct:
        raise RecordRejected(
            MISSING_FIELD,
            "INTERVAL DISTINCTION ID",
            account_type,
            "INTERVAL DISTINCTION ID is empty",
        )
    if acct not in ACCOUNT_TYPES:
        raise RecordRejected(
            BAD_VALUE,
            "INTERVAL DISTINCTION ID",
            account_type,
            f"INTERVAL DISTINCTION ID={account_type!r} is not C, F or M",
        )
    basket = basket_id.strip().upper()
    if set(basket) <= {"0"}:
        basket = ""
    if basket and not basket.isalnum():
        raise RecordRejected(
            BAD_VALUE, "BASKET ID", basket_id, f"BASKET ID={basket_id!r} is not valid"
        )
    if basket and sectype != "S":
        warn.append(
            PositionProblem(
                line,
                WARNING,
                BASKET_IGNORED,
                "BASKET ID",
                basket_id,
                f"BASKET ID={basket_id!r} ignored: only stocks go into baskets",
            )
        )
        basket = ""
    if qty == 0 and not allow_zero:
        raise RecordRejected(
            ZERO_QUANTITY,
            "NET POSITION",
            net_position,
            "NET POSITION is zero: a requirement is computed only for non-zero quantities",
        )
    if mv != 0.0 and sectype != "S":
        warn.append(
            PositionProblem(
                line,
                WARNING,
                MARKET_VALUE_IGNORED,
                "MARKET VALUE",
                market_value,
                f"MARKET VALUE={market_value!r} ignored for security type {sectype}: only a "
                "stock that is not in the P&L set uses it",
            )
        )
        mv = 0.0
    return {
        "line": line,
        "firm": firm_n,
        "account": account_t,
        "account_type": acct,
        "put_call": pc,
        "symbol": sym,
        "exercise_style": ex,
        "settlement_style": st,
        "series_date": series,
        "expiration_date": expiry,
        "strike": strike_v,
        "security_type": sectype,
        "market_value": mv,
        "quantity": float(qty if func == "L" else -qty),
        "_function": func,
        "_qty": qty,
        "basket_id": basket,
    }
