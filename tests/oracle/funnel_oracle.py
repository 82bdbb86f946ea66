#!/usr/bin/env python3
"""Independent reference implementation ("oracle") of the metric contract,
docs/metrics.md (version 2).

Usage:
    python3 funnel_oracle.py --config CONFIG.toml --events EVENTS.ndjson [--t-ms MS]

Prints every crm_funnel_* business-metric sample (docs/metrics.md section 5,
including the version 2 families of 5.2 spend and cost, 5.3 satisfaction and
5.4 segments; 5.5 is not exported) to
stdout, one per line, as `name{label="v",...} value` (labels sorted by name,
value printed as repr(float)), and a JSON ingest summary to stderr:
{"accepted": n, "duplicates": n, "rejected": {reason: n}}.

Standard library only. The clock is "event": T = the largest accepted
occurred_at; --t-ms overrides T for the final evaluation only.
"""

import argparse
import json
import math
import re
import sys
import time
import tomllib

# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------

MAX_LINE_BYTES = 65536
EVENT_TYPES = ("deal_created", "stage_changed", "deal_won", "deal_lost",
               "deal_reopened", "deal_updated", "activity", "feedback", "spend")
STAGE_BEARING = ("deal_created", "stage_changed", "deal_won", "deal_reopened")
STAGE_REQUIRED = ("deal_created", "stage_changed", "deal_reopened")
ATTRIBUTES = ("amount", "currency", "owner", "team", "region", "source")
BUCKETS_S = (3600, 14400, 43200, 86400, 172800, 259200, 604800, 1209600,
             2592000, 5184000, 7776000, 15552000)
QUANTILES = (("0.5", 1, 2), ("0.9", 9, 10))  # label, numerator, denominator
TOP_N = 20
EPOCH_MS_LIMIT = 2 ** 53     # integer occurred_at in -2^53 ... 2^53, bounds included (§7)
DIMENSIONS = ("source", "team", "region", "owner")
DEFAULT_BREAKDOWN_LIMIT = 20
SPECIAL_SEGMENTS = ("other", "unspecified")
SURVEY_RANGE = {"csat": (1, 5), "nps": (0, 10)}
SCORE_BUCKETS = tuple(range(11))  # le = "0" ... "10", then "+Inf"
BANDS = (("csat", "dissatisfied"), ("csat", "neutral"), ("csat", "satisfied"),
         ("nps", "detractor"), ("nps", "passive"), ("nps", "promoter"))

DEFAULT_WINDOWS = ["1d", "7d", "30d", "90d"]
DEFAULT_PIPELINE = {
    "id": "default",
    "currency": "CNY",
    "stages": [
        {"id": "lead", "label": "潜在客户获取"},
        {"id": "contact", "label": "初步接触", "sla": "3d"},
        {"id": "needs", "label": "需求分析", "sla": "7d"},
        {"id": "proposal", "label": "方案报价", "sla": "10d"},
        {"id": "negotiation", "label": "商务谈判", "sla": "14d"},
        {"id": "won", "label": "签订合同", "won": True},
        {"id": "after_sales", "label": "售后服务"},
    ],
}

# ---------------------------------------------------------------------------
# Durations and timestamps
# ---------------------------------------------------------------------------

UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000,
           "d": 86_400_000, "w": 7 * 86_400_000}
_DURATION_PART = re.compile(r"\s*(\d+)\s*(ms|s|m|h|d|w)")


def parse_duration(text):
    """Humantime-style duration ("5m", "180d", "1h30m") -> milliseconds."""
    if not isinstance(text, str):
        raise ValueError(f"duration must be a string: {text!r}")
    pos, total, parts = 0, 0, 0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if not m:
            if text[pos:].strip() == "":
                break
            raise ValueError(f"bad duration: {text!r}")
        total += int(m.group(1)) * UNIT_MS[m.group(2)]
        pos, parts = m.end(), parts + 1
    if parts == 0:
        raise ValueError(f"bad duration: {text!r}")
    return total


def days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def days_in_month(y, m):
    if m == 2:
        leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
        return 29 if leap else 28
    return 30 if m in (4, 6, 9, 11) else 31


# RFC 3339 section 5.6 (§7 "Timestamps"): "T"/"t" between date and time (a
# space is not accepted), "Z"/"z" or a numeric offset, ASCII digits only
# ([0-9], not \d, which would match other Unicode digits).
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?([Zz]|[+-][0-9]{2}:[0-9]{2})")


def parse_rfc3339(text):
    """RFC 3339 with offset -> epoch ms (fraction truncated), or None."""
    m = _RFC3339.fullmatch(text)
    if not m:
        return None
    y, mo, d, hh, mi, ss = (int(g) for g in m.groups()[:6])
    if y < 1:  # year 0000 is outside 0001-9999 (§7)
        return None
    if not (1 <= mo <= 12 and 1 <= d <= days_in_month(y, mo)):
        return None
    if hh > 23 or mi > 59 or ss > 59:  # leap second 60 not accepted
        return None
    frac = m.group(7) or ""
    millis = int((frac + "000")[:3])
    offset_ms = 0
    if m.group(8) not in ("Z", "z"):
        oh, om = int(m.group(8)[1:3]), int(m.group(8)[4:6])
        if oh > 23 or om > 59:
            return None
        offset_ms = (oh * 60 + om) * 60_000
        if m.group(8)[0] == "-":
            offset_ms = -offset_ms
    seconds = days_from_civil(y, mo, d) * 86400 + hh * 3600 + mi * 60 + ss
    return seconds * 1000 + millis - offset_ms


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

class Pipeline:
    def __init__(self, spec):
        self.id = spec["id"]
        self.currency = spec.get("currency", "CNY")
        self.stage_ids = [s["id"] for s in spec["stages"]]
        self.sla_ms = [parse_duration(s["sla"]) if s.get("sla") is not None
                       else None for s in spec["stages"]]
        won = [i for i, s in enumerate(spec["stages"]) if s.get("won")]
        if len(won) != 1:
            raise ValueError(f"pipeline {self.id}: exactly one won stage needed")
        if len(set(self.stage_ids)) != len(self.stage_ids):
            raise ValueError(f"pipeline {self.id}: duplicate stage ids")
        self.won = won[0]
        self.index = {sid: i for i, sid in enumerate(self.stage_ids)}


class Config:
    def __init__(self, data):
        windows = data.get("windows", DEFAULT_WINDOWS)
        self.windows = [(w, parse_duration(w)) for w in windows]
        self.retention_ms = parse_duration(data.get("retention", "180d"))
        self.skew_ms = parse_duration(data.get("max_clock_skew", "5m"))
        specs = data.get("pipelines")
        if specs is None:
            specs = [DEFAULT_PIPELINE]
        self.pipelines = {}
        for spec in specs:
            p = Pipeline(spec)
            self.pipelines[p.id] = p
        self._breakdowns(data)

    def _breakdowns(self, data):
        """§2 / §5.4 / §7 "Segment values". Every error names its key."""
        dims = data.get("breakdowns", list(DIMENSIONS))
        if not isinstance(dims, list) or \
                not all(isinstance(k, str) for k in dims):
            raise ValueError("breakdowns: must be a list of dimension names")
        for k in dims:
            if k not in DIMENSIONS:
                raise ValueError(f"breakdowns: unknown dimension {k!r} "
                                 f"(known: {', '.join(DIMENSIONS)})")
        if len(set(dims)) != len(dims):
            raise ValueError("breakdowns: a dimension is listed twice")
        self.breakdowns = list(dims)

        limit = data.get("breakdown_limit", DEFAULT_BREAKDOWN_LIMIT)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"breakdown_limit: must be an integer >= 1, "
                             f"not {limit!r}")
        self.breakdown_limit = limit

        fixed = data.get("breakdown_segments", {})
        if not isinstance(fixed, dict):
            raise ValueError("breakdown_segments: must be a table "
                             "(dimension = [values])")
        self.breakdown_segments = {}
        for k, values in fixed.items():
            where = f"breakdown_segments.{k}"
            if k not in DIMENSIONS:
                raise ValueError(f"{where}: unknown dimension {k!r}")
            if k not in self.breakdowns:
                raise ValueError(f"{where}: dimension {k!r} is not in "
                                 f"breakdowns")
            if not isinstance(values, list) or \
                    not all(isinstance(v, str) for v in values):
                raise ValueError(f"{where}: must be a list of strings")
            for v in values:
                if v in SPECIAL_SEGMENTS:
                    raise ValueError(f"{where}: {v!r} is not a segment value "
                                     f"(it stands for a group of values)")
                if v == "":
                    # Reading: "" is "no value" (§7), i.e. `unspecified`; a
                    # fixed segment "" could never hold anything.
                    raise ValueError(f"{where}: the empty string is not a "
                                     f"segment value (it is unspecified)")
            if len(set(values)) != len(values):
                raise ValueError(f"{where}: a value is listed twice")
            self.breakdown_segments[k] = list(values)


def load_config(path):
    with open(path, "rb") as f:
        return Config(tomllib.load(f))


# ---------------------------------------------------------------------------
# Decoding and validation (docs/metrics.md section 1)
# ---------------------------------------------------------------------------

class Reject(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _bad_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def _checked_float(text):
    value = float(text)
    if math.isinf(value):  # e.g. 1e400: a JSON parse error in serde_json
        raise ValueError("number out of range")
    return value


def _checked_int(text):
    value = int(text)
    try:
        float(value)  # e.g. 1 followed by 400 zeros: out of f64 range
    except OverflowError:
        raise ValueError("number out of range")
    return value


def _has_surrogate(value):
    """Lone surrogates (from \\ud800 escapes) are not valid JSON text."""
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v)
                   for k, v in value.items())
    return False


def _no_repeated_keys(pairs):
    """A repeated key in any object at any depth is invalid_json (§7). Keys
    are compared after unescaping ("a" and "\\u0061" are the same key)."""
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError(f"repeated key {k!r}")
        obj[k] = v
    return obj


def decode(raw):
    """bytes of one line -> dict, or raise Reject."""
    if len(raw) > MAX_LINE_BYTES:
        raise Reject("too_large")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Reject("invalid_utf8")
    try:
        obj = json.loads(text, parse_constant=_bad_constant,
                         parse_float=_checked_float, parse_int=_checked_int,
                         object_pairs_hook=_no_repeated_keys)
    except ValueError:
        raise Reject("invalid_json")
    if not isinstance(obj, dict) or _has_surrogate(obj):
        raise Reject("invalid_json")
    return obj


def _nbytes(s):
    return len(s.encode("utf-8"))


def _get(obj, key):
    """Absent and null are the same."""
    return obj.get(key)


def _string_field(obj, key, ev, max_bytes, min_bytes=1):
    """A required string field: missing_field when absent or null."""
    v = _get(obj, key)
    if v is None:
        raise Reject("missing_field")
    if not isinstance(v, str) or not min_bytes <= _nbytes(v) <= max_bytes:
        raise Reject("invalid_field")
    ev[key] = v


def _amount(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise Reject("invalid_field")
    if not math.isfinite(v) or v < 0:
        raise Reject("invalid_field")
    return v


def validate(obj, cfg):
    """The checks of §1 in the order of §7. Returns a normalized event dict
    or raises Reject."""
    ev = {}
    _string_field(obj, "event_id", ev, 128)
    # deal_id comes before type, but is not read on a spend event: peek at
    # whether type is the string "spend" (any other value, also a non-string,
    # has its deal_id checked; the type itself is validated next).
    is_spend = _get(obj, "type") == "spend"
    if not is_spend:
        _string_field(obj, "deal_id", ev, 128)
    v = _get(obj, "type")
    if v is None:
        raise Reject("missing_field")
    if not isinstance(v, str):
        raise Reject("invalid_field")
    ev["type"] = v
    v = _get(obj, "occurred_at")
    if v is None:
        raise Reject("missing_field")
    if isinstance(v, bool):
        raise Reject("invalid_field")
    if isinstance(v, int):
        if not -EPOCH_MS_LIMIT <= v <= EPOCH_MS_LIMIT:
            raise Reject("invalid_field")
        ev["t"] = v
    elif isinstance(v, str):
        t = parse_rfc3339(v)
        if t is None:
            raise Reject("invalid_field")
        ev["t"] = t
    else:
        raise Reject("invalid_field")

    etype = ev["type"]
    if etype not in EVENT_TYPES:
        raise Reject("unknown_type")

    v = _get(obj, "pipeline")
    if v is None:
        v = "default"
    if not isinstance(v, str):
        raise Reject("invalid_field")
    if v not in cfg.pipelines:
        raise Reject("unknown_pipeline")
    ev["pipeline"] = v
    pipe = cfg.pipelines[v]

    # stage is read on the stage-bearing types only (ignored elsewhere, §7).
    v = _get(obj, "stage")
    if etype in STAGE_REQUIRED:
        if v is None:
            raise Reject("missing_field")
        if not isinstance(v, str):
            raise Reject("invalid_field")
        if v not in pipe.index:
            raise Reject("unknown_stage")
        ev["stage"] = pipe.index[v]
    elif etype == "deal_won":
        if v is not None:
            if not isinstance(v, str):
                raise Reject("invalid_field")
            if v not in pipe.index:
                raise Reject("unknown_stage")
            if pipe.index[v] != pipe.won:
                raise Reject("invalid_field")
        ev["stage"] = pipe.won

    # The fields a type requires come before the optional fields; a field a
    # type does not use (activity, lost_reason, survey, score) is ignored,
    # not validated (§7).
    if etype == "activity":
        _string_field(obj, "activity", ev, 64)
    elif etype == "spend":
        v = _get(obj, "amount")
        if v is None:
            raise Reject("missing_field")
        ev["amount"] = _amount(v)
    elif etype == "feedback":
        v = _get(obj, "survey")
        if v is None:
            raise Reject("missing_field")
        if not isinstance(v, str) or v not in SURVEY_RANGE:
            raise Reject("invalid_field")
        ev["survey"] = v
        v = _get(obj, "score")
        if v is None:
            raise Reject("missing_field")
        # a JSON integer: not 4.0 (a float), not true (a bool is an int here)
        if isinstance(v, bool) or not isinstance(v, int):
            raise Reject("invalid_field")
        lo, hi = SURVEY_RANGE[ev["survey"]]
        if not lo <= v <= hi:
            raise Reject("invalid_field")
        ev["score"] = v

    if etype != "spend":
        v = _get(obj, "amount")
        if v is not None:
            ev["amount"] = _amount(v)
    v = _get(obj, "currency")
    if v is not None:
        if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z]{3}", v):
            raise Reject("invalid_field")
        ev["currency"] = v
    for key in ("owner", "team", "region", "source", "lost_reason"):
        if key == "lost_reason" and etype != "deal_lost":
            continue
        v = _get(obj, key)
        if v is not None:
            if not isinstance(v, str) or _nbytes(v) > 128:
                raise Reject("invalid_field")
            ev[key] = v
    return ev


class Store:
    """Arrival-order ingestion: validation, time checks, dedup."""

    def __init__(self, cfg, now_ms=None):
        self.cfg = cfg
        self.now_ms = now_ms or (lambda: time.time_ns() // 1_000_000)
        self.events = []          # accepted events, arrival order
        self.seen_ids = set()
        self.tcur = None          # largest accepted occurred_at so far
        self.duplicates = 0
        self.rejected = {}

    def ingest(self, raw):
        try:
            ev = validate(decode(raw), self.cfg)
            if ev["t"] > self.now_ms() + self.cfg.skew_ms:
                raise Reject("future_timestamp")
            if self.tcur is not None and \
                    ev["t"] <= self.tcur - self.cfg.retention_ms:
                raise Reject("too_old")
        except Reject as r:
            self.rejected[r.reason] = self.rejected.get(r.reason, 0) + 1
            return r.reason
        if ev["event_id"] in self.seen_ids:
            self.duplicates += 1
            return "duplicate"
        self.seen_ids.add(ev["event_id"])
        self.events.append(ev)
        self.tcur = ev["t"] if self.tcur is None else max(self.tcur, ev["t"])
        return "accepted"

    def summary(self):
        return {"accepted": len(self.events), "duplicates": self.duplicates,
                "rejected": dict(sorted(self.rejected.items()))}


# ---------------------------------------------------------------------------
# Per-deal derivation (docs/metrics.md section 4)
# ---------------------------------------------------------------------------

class Deal:
    """One deal: its accepted events with one (pipeline, deal_id), spend
    events excepted (they carry no deal_id here, see validate). A feedback
    event is one of the deal's events: it can create a deal (one with no
    stage, never open), and its attributes count like any other event's."""

    def __init__(self, pipe, events, T):
        n = len(pipe.stage_ids)
        events = sorted(events, key=lambda e: (e["t"], e["event_id"].encode()))
        self.E = [None] * n
        self.state = None          # None (no stage-bearing event yet), open, won, lost
        self.stage = None          # index of current stage
        self.stage_time = None     # time of the last stage-bearing event
        self.lost_at = None
        self.lost_reason = None
        self.attrs = {}
        self.feedback = []         # (occurred_at, survey, score), every response
        for e in events:
            if e["type"] in STAGE_BEARING:
                s = e["stage"]
                if self.E[s] is None:
                    self.E[s] = e["t"]
                self.stage, self.stage_time = s, e["t"]
                self.state = "won" if s >= pipe.won else "open"
            elif e["type"] == "deal_lost":
                self.state = "lost"
                self.lost_at = e["t"]
                self.lost_reason = e.get("lost_reason") or "unspecified"
            elif e["type"] == "feedback":
                self.feedback.append((e["t"], e["survey"], e["score"]))
            for key in ATTRIBUTES:
                if key in e:
                    self.attrs[key] = e[key]
        # R(d, i) = min over j >= i of E(d, s_j); None when never reached.
        self.R = [None] * n
        best = None
        for i in range(n - 1, -1, -1):
            if self.E[i] is not None and (best is None or self.E[i] < best):
                best = self.E[i]
            self.R[i] = best
        self.C = self.R[0]
        self.currency = self.attrs.get("currency", pipe.currency)
        self.age = T - self.stage_time if self.state == "open" else None


# ---------------------------------------------------------------------------
# Business metrics (docs/metrics.md section 5)
# ---------------------------------------------------------------------------

def nearest_rank(sorted_values, num, den):
    n = len(sorted_values)
    rank = -(-num * n // den)  # ceil(q * n), exact
    return sorted_values[max(rank, 1) - 1]


def top_n(counts):
    """Keep the 20 largest (ties by name, byte-wise), the rest as "other".
    The values "other" and "unspecified" are never ranked: each is its own
    series (§7), "other" together with what falls outside the 20."""
    special = {k: c for k, c in counts.items() if k in ("other", "unspecified")}
    order = sorted(((k, c) for k, c in counts.items() if k not in special),
                   key=lambda kv: (-kv[1], kv[0].encode()))
    kept = dict(order[:TOP_N])
    rest = sum(c for _, c in order[TOP_N:])
    if rest or "other" in special:
        kept["other"] = special.get("other", 0) + rest
    if "unspecified" in special:
        kept["unspecified"] = special["unspecified"]
    return kept


def band(survey, score):
    """§5.4 bands: csat 4-5 satisfied, 3 neutral, 1-2 dissatisfied;
    nps 9-10 promoter, 7-8 passive, 0-6 detractor."""
    if survey == "csat":
        return "satisfied" if score >= 4 else "neutral" if score == 3 \
            else "dissatisfied"
    return "promoter" if score >= 9 else "passive" if score >= 7 \
        else "detractor"


def ranked_segments(deals, k, limit):
    """The top-`limit` values of attribute k at T over `deals` (by number of
    deals, ties by value byte-wise). "", "other" and "unspecified" are never
    ranked (§7)."""
    counts = {}
    for d in deals:
        v = d.attrs.get(k)
        if v is None or v == "" or v in SPECIAL_SEGMENTS:
            continue
        counts[v] = counts.get(v, 0) + 1
    order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].encode()))
    return [v for v, _ in order[:limit]]


def segment_of(value, listed):
    """The segment of an attribute value (a str, or None when absent)."""
    if value is None or value == "" or value == "unspecified":
        return "unspecified"
    if value in listed:        # never "other"/"unspecified" (config, ranking)
        return value
    return "other"             # also the literal value "other"


def _segment_order(seg):
    return (seg in SPECIAL_SEGMENTS, SPECIAL_SEGMENTS.index(seg)
            if seg in SPECIAL_SEGMENTS else 0, seg.encode())


def evaluate(cfg, events, T):
    """Returns a list of (name, labels dict, value)."""
    out = []

    def emit(name, labels, value):
        out.append((name, labels, value))

    def histogram(name, labels, values, bounds=BUCKETS_S):
        for le in bounds:
            emit(name + "_bucket", dict(labels, le=str(le)),
                 sum(1 for d in values if d <= le))
        emit(name + "_bucket", dict(labels, le="+Inf"), len(values))
        emit(name + "_sum", labels, math.fsum(values))
        emit(name + "_count", labels, len(values))

    def quantiles(name, labels, durations_s):
        if durations_s:
            values = sorted(durations_s)
            for label, num, den in QUANTILES:
                emit(name, dict(labels, quantile=label),
                     nearest_rank(values, num, den))

    def acquisition(prefix, base, spent, n_new, n_won):
        """§5.2: a spend series per currency that occurs; the two costs
        where their denominator is > 0."""
        for cur, total in sorted(spent.items()):
            lab = dict(base, currency=cur)
            emit(prefix + "acquisition_spend", lab, total)
            if n_new > 0:
                emit(prefix + "cost_per_lead", lab, total / n_new)
            if n_won > 0:
                emit(prefix + "customer_acquisition_cost", lab, total / n_won)

    def satisfaction_ratios(prefix, base, counts):
        """§5.3 ratios from band counts {(survey, band): n}."""
        csat = sum(c for (s, _), c in counts.items() if s == "csat")
        if csat > 0:
            emit(prefix + "csat_ratio", base,
                 counts[("csat", "satisfied")] / csat)
        nps = sum(c for (s, _), c in counts.items() if s == "nps")
        if nps > 0:
            emit(prefix + "net_promoter_score", base,
                 100 * (counts[("nps", "promoter")]
                        - counts[("nps", "detractor")]) / nps)

    def spend_by_currency(spends, lo, pipe):
        """S(p, W, c) over the given spend events with occurred_at in (lo, T]."""
        amounts = {}
        for e in spends:
            if lo < e["t"] <= T:
                cur = e.get("currency", pipe.currency)   # §7 "Spend currency"
                amounts.setdefault(cur, []).append(e["amount"])
        return {cur: math.fsum(v) for cur, v in amounts.items()}

    used = [e for e in events if T - cfg.retention_ms < e["t"] <= T]

    for pid, pipe in cfg.pipelines.items():
        stages = pipe.stage_ids
        n = len(stages)
        pevents = [e for e in used if e["pipeline"] == pid]
        by_deal = {}
        spends = []
        for e in pevents:
            if e["type"] == "spend":
                spends.append(e)           # belongs to no deal (§1, §4)
            else:
                by_deal.setdefault(e["deal_id"], []).append(e)
        deals = [Deal(pipe, evs, T) for _, evs in sorted(by_deal.items())]
        feedback = [e for e in pevents if e["type"] == "feedback"]

        for wlabel, wms in cfg.windows:
            def in_w(t):
                return t is not None and T - wms < t <= T

            base = {"pipeline": pid, "window": wlabel}
            entries = [sum(1 for d in deals if in_w(d.R[i])) for i in range(n)]
            cohort = [sum(1 for d in deals if in_w(d.C) and d.R[i] is not None
                          and d.R[i] <= T) for i in range(n)]
            for i in range(n):
                lab = dict(base, funnel_stage=stages[i])
                emit("crm_funnel_stage_entries", lab, entries[i])
                emit("crm_funnel_cohort_deals", lab, cohort[i])
            for i in range(n - 1):
                lab = dict(base, from_stage=stages[i], to_stage=stages[i + 1])
                if entries[i] > 0:
                    emit("crm_funnel_period_conversion_ratio", lab,
                         entries[i + 1] / entries[i])
                if cohort[i] > 0:
                    emit("crm_funnel_cohort_conversion_ratio", lab,
                         cohort[i + 1] / cohort[i])
                durs = [(d.R[i + 1] - d.R[i]) / 1000 for d in deals
                        if in_w(d.R[i + 1])]
                histogram("crm_funnel_transition_duration_seconds", lab, durs)
                quantiles("crm_funnel_transition_duration_quantile_seconds",
                          lab, durs)

            won_deals = [d for d in deals if in_w(d.R[pipe.won])]
            ttc = [(d.R[pipe.won] - d.C) / 1000 for d in won_deals]
            histogram("crm_funnel_time_to_close_seconds", base, ttc)
            quantiles("crm_funnel_time_to_close_quantile_seconds", base, ttc)
            lost_deals = [d for d in deals
                          if d.state == "lost" and in_w(d.lost_at)]
            won, lost = len(won_deals), len(lost_deals)
            emit("crm_funnel_won_deals", base, won)
            emit("crm_funnel_lost_deals", base, lost)
            if won + lost > 0:
                emit("crm_funnel_win_rate_ratio", base, won / (won + lost))
            reasons = {}
            for d in lost_deals:
                reasons[d.lost_reason] = reasons.get(d.lost_reason, 0) + 1
            for reason, c in sorted(top_n(reasons).items()):
                emit("crm_funnel_lost_reason_deals", dict(base, reason=reason), c)
            kinds = {}
            for e in pevents:
                if e["type"] == "activity" and in_w(e["t"]):
                    kinds[e["activity"]] = kinds.get(e["activity"], 0) + 1
            for kind, c in sorted(top_n(kinds).items()):
                emit("crm_funnel_activities", dict(base, activity=kind), c)

            # §5.2: N(p, W) = cohort_deals of the first stage = #{d: C(d) in W}.
            acquisition("crm_funnel_", base, spend_by_currency(spends, T - wms, pipe),
                        cohort[0], won)

            # §5.3: every response counts (also several from one deal).
            counts = dict.fromkeys(BANDS, 0)
            for survey in ("csat", "nps"):
                scores = [e["score"] for e in feedback
                          if e["survey"] == survey and in_w(e["t"])]
                histogram("crm_funnel_feedback_score", dict(base, survey=survey),
                          scores, SCORE_BUCKETS)
                for s in scores:
                    counts[(survey, band(survey, s))] += 1
            satisfaction_ratios("crm_funnel_", base, counts)

        open_deals = [d for d in deals if d.state == "open"]
        amounts = {}
        for d in open_deals:
            key = (d.stage, d.currency)
            amounts.setdefault(key, []).append(d.attrs.get("amount", 0))
        for i in range(n):
            lab = {"pipeline": pid, "funnel_stage": stages[i]}
            emit("crm_funnel_open_deals", lab,
                 sum(1 for d in open_deals if d.stage == i))
            if pipe.sla_ms[i] is not None:
                emit("crm_funnel_stuck_deals", lab,
                     sum(1 for d in open_deals
                         if d.stage == i and d.age > pipe.sla_ms[i]))
        for (i, cur), values in sorted(amounts.items()):
            emit("crm_funnel_open_amount",
                 {"pipeline": pid, "funnel_stage": stages[i], "currency": cur},
                 math.fsum(values))

        # §5.4 segments.
        #
        # Retention: "a deal counts under its attribute at T" and "the deals
        # ranked for top-N are the deals of the pipeline with at least one
        # accepted event at or before T" are read over the same event set as
        # every other number: the accepted events with occurred_at in
        # (T - retention, T]. A deal all of whose events are at or before
        # T - retention has been evicted from the store: it is no deal at T,
        # is not ranked and falls in no segment. A deal whose older events
        # were evicted has the attributes its remaining events carry (e.g. a
        # source set only on an evicted deal_created is gone: unspecified).
        # Every deal with an event in that set counts, also one with no
        # stage-bearing event (only deal_updated, activity or feedback).
        # Spend events: those of the same set (any window) decide whether the
        # `other` / `unspecified` segments exist.
        for k in cfg.breakdowns:
            fixed = cfg.breakdown_segments.get(k)
            listed = fixed if fixed is not None else \
                ranked_segments(deals, k, cfg.breakdown_limit)
            listed_set = set(listed)
            seg_deals = {s: [] for s in listed}
            seg_spends = {s: [] for s in listed}
            for d in deals:
                seg_deals.setdefault(segment_of(d.attrs.get(k), listed_set),
                                     []).append(d)
            for e in spends:
                seg_spends.setdefault(segment_of(e.get(k), listed_set),
                                      []).append(e)
            # listed segments always; other/unspecified once a deal or a
            # spend event falls in them (setdefault created them then).
            for seg in sorted(set(seg_deals) | set(seg_spends),
                              key=_segment_order):
                sdeals = seg_deals.get(seg, [])
                sspends = seg_spends.get(seg, [])
                sbase = {"pipeline": pid, "dimension": k, "segment": seg}
                for wlabel, wms in cfg.windows:
                    lo = T - wms
                    entries, cohort = [0] * n, [0] * n
                    ttc, lost = [], 0
                    counts = dict.fromkeys(BANDS, 0)
                    for d in sdeals:
                        R = d.R
                        for i in range(n):
                            if R[i] is not None and lo < R[i] <= T:
                                entries[i] += 1
                        if d.C is not None and lo < d.C <= T:
                            for i in range(n):
                                if R[i] is not None and R[i] <= T:
                                    cohort[i] += 1
                        rw = R[pipe.won]
                        if rw is not None and lo < rw <= T:
                            ttc.append((rw - d.C) / 1000)
                        if d.state == "lost" and lo < d.lost_at <= T:
                            lost += 1
                        for t, survey, score in d.feedback:
                            if lo < t <= T:
                                counts[(survey, band(survey, score))] += 1
                    won = len(ttc)
                    wbase = dict(sbase, window=wlabel)
                    for i in range(n):
                        lab = dict(wbase, funnel_stage=stages[i])
                        emit("crm_funnel_segment_stage_entries", lab, entries[i])
                        emit("crm_funnel_segment_cohort_deals", lab, cohort[i])
                    emit("crm_funnel_segment_won_deals", wbase, won)
                    emit("crm_funnel_segment_lost_deals", wbase, lost)
                    if won + lost > 0:
                        emit("crm_funnel_segment_win_rate_ratio", wbase,
                             won / (won + lost))
                    quantiles("crm_funnel_segment_time_to_close_quantile_seconds",
                              wbase, ttc)
                    acquisition("crm_funnel_segment_", wbase,
                                spend_by_currency(sspends, lo, pipe),
                                cohort[0], won)
                    for (survey, b) in BANDS:
                        emit("crm_funnel_segment_feedback_responses",
                             dict(wbase, survey=survey, band=b),
                             counts[(survey, b)])
                    satisfaction_ratios("crm_funnel_segment_", wbase, counts)
                sopen = [d for d in sdeals if d.state == "open"]
                emit("crm_funnel_segment_open_deals", sbase, len(sopen))
                amounts = {}
                for d in sopen:
                    amounts.setdefault(d.currency, []).append(
                        d.attrs.get("amount", 0))
                for cur, values in sorted(amounts.items()):
                    emit("crm_funnel_segment_open_amount",
                         dict(sbase, currency=cur), math.fsum(values))

    emit("crm_funnel_evaluation_timestamp_seconds", {}, T / 1000)
    return out


# ---------------------------------------------------------------------------
# Output and CLI
# ---------------------------------------------------------------------------

def _escape(v):
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_sample(name, labels, value):
    if labels:
        inner = ",".join(f'{k}="{_escape(labels[k])}"' for k in sorted(labels))
        return f"{name}{{{inner}}} {float(value)!r}"
    return f"{name} {float(value)!r}"


def read_lines(path):
    """Lines as bytes without the trailing newline; empty and whitespace-only
    lines skipped (§7 "JSON shape"). Whitespace is JSON's: space, tab, CR."""
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line for line in lines if line.strip(b" \t\r") != b""]


def run(cfg, lines, t_ms=None, now_ms=None):
    """Ingest lines (bytes) and evaluate. Returns (samples, store)."""
    store = Store(cfg, now_ms)
    for raw in lines:
        store.ingest(raw)
    T = t_ms if t_ms is not None else store.tcur
    samples = [] if T is None else evaluate(cfg, store.events, T)
    return samples, store


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--events", required=True)
    ap.add_argument("--t-ms", type=int, default=None)
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    samples, store = run(cfg, read_lines(args.events), args.t_ms)
    for name, labels, value in samples:
        print(format_sample(name, labels, value))
    print(json.dumps(store.summary(), ensure_ascii=False), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
