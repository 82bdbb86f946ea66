"""Hand-checked tests of the oracle (funnel_oracle.py) against docs/metrics.md
(version 2: spend and cost §5.2, satisfaction §5.3, segments §5.4, the
readings of §7).

Run: python3 -m unittest discover -s /work/main/tests/oracle -v

Every expected number below is derived by hand from docs/metrics.md; the
derivation is written next to it.
"""

import json
import os
import subprocess
import sys
import tempfile
import tomllib
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import funnel_oracle as fo  # noqa: E402

H = 3_600_000
D = 24 * H
T = 1_700_000_000_000          # 2023-11-14T22:13:20Z, the largest event time
BASE = T - 10 * D              # "day 0" of the scenario
NOW = T + 60_000               # injected wall clock


def at(days, hours=0):
    return BASE + days * D + hours * H


def line(eid, deal, typ, t, pipeline="p", **fields):
    obj = {"event_id": eid, "deal_id": deal, "type": typ, "occurred_at": t}
    if pipeline is not None:
        obj["pipeline"] = pipeline
    obj.update(fields)
    return json.dumps(obj, ensure_ascii=False).encode()


def key(name, **labels):
    return fo.format_sample(name, labels, 0).rsplit(" ", 1)[0]


def as_dict(samples):
    out = {}
    for name, labels, value in samples:
        k = key(name, **labels)
        assert k not in out, f"duplicate series {k}"
        out[k] = value
    return out


CONFIG_P = """
windows = ["1d", "7d", "30d"]
retention = "30d"
listen = "0.0.0.0:9000"   # ignored

[[pipelines]]
id = "p"
currency = "USD"
stages = [
  { id = "a", label = "A", sla = "1d" },
  { id = "b", label = "B", sla = "2d" },
  { id = "c", label = "C", won = true },
  { id = "d", label = "D" },
]
"""


def cfg_p():
    return fo.Config(tomllib.loads(CONFIG_P))


def cfg_with(top="", tables=""):
    """CONFIG_P with top-level keys before it and TOML tables after it."""
    return fo.Config(tomllib.loads(top + CONFIG_P + tables))


def spend_line(eid, t, amount, pipeline="p", **fields):
    """A spend event: no deal_id unless given in fields."""
    obj = {"event_id": eid, "type": "spend", "occurred_at": t, "amount": amount}
    if pipeline is not None:
        obj["pipeline"] = pipeline
    obj.update(fields)
    return json.dumps(obj, ensure_ascii=False).encode()


class MetricsCase(unittest.TestCase):
    """Runs EVENTS with CONFIG at t_ms=T (windows 1d = (9d,10d],
    7d = (3d,10d], 30d = (-20d,10d]; retention 30d keeps (-20d,10d])."""
    EVENTS = []
    TOP, TABLES = "", ""

    @classmethod
    def setUpClass(cls):
        cls.samples, cls.store = fo.run(cfg_with(cls.TOP, cls.TABLES), cls.EVENTS,
                                        t_ms=T, now_ms=lambda: NOW)
        cls.m = as_dict(cls.samples)

    def get(self, name, **labels):
        return self.m[key(name, pipeline="p", **labels)]

    def absent(self, name, **labels):
        self.assertNotIn(key(name, pipeline="p", **labels), self.m)

    def segments(self, dimension):
        """The existing segments of a dimension, from segment_open_deals
        (one series per existing segment)."""
        return {labels["segment"] for name, labels, _ in self.samples
                if name == "crm_funnel_segment_open_deals"
                and labels["dimension"] == dimension}


# Scenario (T = day 10; windows 1d = (9d,10d], 7d = (3d,10d], 30d = (-20d,10d]):
#   d7: created a at -25d, arrives first: accepted, but outside retention at T.
#   d1: created a @0d, won @9d (skips b; 9d is exactly T-1d: not in 1d window).
#   d2: created a @8d (amount 200), b @8d1h, back to a @8d2h, updated amount 250 @9d.
#   d3: created b @5d, lost @6d "price", reopened b @7d, won @9d12h.
#   d4: created a @9d3h (EUR, 50), b @9d4h, lost @9d5h without reason.
#   d5: created a @1d (EUR), b @2d (amount 10); activity email @2d, call @9d+19.2h (amount 30).
#   d6: "z-created" a @10d and "a-won" @10d: same time, event_id order: won, then created.
#   d8: created a @-15d, b @-14d, lost @-13d "timing".
#   dx: updated (amount 999) @9d, activity meeting @10d: no stage, never open.
SCENARIO = [
    line("d7-c", "d7", "deal_created", at(-25), stage="a"),
    line("d1-c", "d1", "deal_created", at(0), stage="a"),
    line("d1-w", "d1", "deal_won", at(9)),
    line("d2-c", "d2", "deal_created", at(8), stage="a", amount=200),
    line("d2-b", "d2", "stage_changed", at(8, 1), stage="b"),
    line("d2-a", "d2", "stage_changed", at(8, 2), stage="a"),
    line("d2-u", "d2", "deal_updated", at(9), amount=250),
    line("d2-call", "d2", "activity", at(9, 5), activity="call"),
    line("d3-c", "d3", "deal_created", at(5), stage="b", amount=100),
    line("d3-l", "d3", "deal_lost", at(6), lost_reason="price"),
    line("d3-w", "d3", "deal_won", at(9, 12), stage="c"),   # arrives before the reopen
    line("d3-r", "d3", "deal_reopened", at(7), stage="b"),
    line("d4-c", "d4", "deal_created", at(9, 3), stage="a", amount=50, currency="EUR"),
    line("d4-b", "d4", "stage_changed", at(9, 4), stage="b"),
    line("d4-l", "d4", "deal_lost", at(9, 5), lost_reason=None),
    line("d5-c", "d5", "deal_created", at(1), stage="a", currency="EUR"),
    line("d5-b", "d5", "stage_changed", at(2), stage="b", amount=10),
    line("d5-email", "d5", "activity", at(2), activity="email"),
    line("d5-call", "d5", "activity", at(9) + 69_120_000, activity="call", amount=30),
    line("z-created", "d6", "deal_created", T, stage="a"),
    line("a-won", "d6", "deal_won", T),
    line("d8-c", "d8", "deal_created", at(-15), stage="a"),
    line("d8-b", "d8", "stage_changed", at(-14), stage="b"),
    line("d8-l", "d8", "deal_lost", at(-13), lost_reason="timing"),
    line("dx-u", "dx", "deal_updated", at(9), amount=999),
    line("dx-m", "dx", "activity", T, activity="meeting"),
    # duplicates: an exact resend, and a different event reusing an id
    line("d1-c", "d1", "deal_created", at(0), stage="a"),
    line("d1-c", "d9", "deal_created", at(9), stage="b"),
    # too_old relative to the largest accepted time so far (T): T - 30d
    line("old", "d10", "deal_created", at(-20), stage="a"),
]


class ScenarioTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        samples, cls.store = fo.run(cfg_p(), SCENARIO, now_ms=lambda: NOW)
        cls.m = as_dict(samples)

    def get(self, name, **labels):
        return self.m[key(name, **labels)]

    def absent(self, name, **labels):
        self.assertNotIn(key(name, **labels), self.m)

    def test_summary(self):
        self.assertEqual(self.store.summary(),
                         {"accepted": 26, "duplicates": 2,
                          "rejected": {"too_old": 1}})
        self.assertEqual(self.get("crm_funnel_evaluation_timestamp_seconds"),
                         1700000000.0)

    def test_stage_entries(self):
        # R per deal (days): d1 [0,9,9,-] d2 [8,8+1h,-,-] d3 [5,5,9.5,-]
        # d4 [9+3h,9+4h,-,-] d5 [1,2,-,-] d6 [10,10,10,-] d8 [-15,-14,-,-]
        expected = {"1d": [2, 2, 2, 0], "7d": [4, 5, 3, 0], "30d": [7, 7, 3, 0]}
        for w, counts in expected.items():
            for s, c in zip("abcd", counts):
                self.assertEqual(self.get("crm_funnel_stage_entries",
                                          pipeline="p", funnel_stage=s, window=w), c, (w, s))

    def test_period_conversion(self):
        r = "crm_funnel_period_conversion_ratio"
        self.assertEqual(self.get(r, pipeline="p", from_stage="a", to_stage="b", window="1d"), 1.0)
        self.assertEqual(self.get(r, pipeline="p", from_stage="a", to_stage="b", window="7d"), 1.25)
        self.assertEqual(self.get(r, pipeline="p", from_stage="b", to_stage="c", window="7d"), 0.6)
        self.assertEqual(self.get(r, pipeline="p", from_stage="b", to_stage="c", window="30d"), 3 / 7)
        self.assertEqual(self.get(r, pipeline="p", from_stage="c", to_stage="d", window="30d"), 0.0)

    def test_cohort(self):
        # C in 1d: d4, d6; in 7d: d2, d3, d4, d6; in 30d: all seven.
        expected = {"1d": [2, 2, 1, 0], "7d": [4, 4, 2, 0], "30d": [7, 7, 3, 0]}
        for w, counts in expected.items():
            for s, c in zip("abcd", counts):
                self.assertEqual(self.get("crm_funnel_cohort_deals",
                                          pipeline="p", funnel_stage=s, window=w), c, (w, s))
        r = "crm_funnel_cohort_conversion_ratio"
        self.assertEqual(self.get(r, pipeline="p", from_stage="b", to_stage="c", window="1d"), 0.5)
        self.assertEqual(self.get(r, pipeline="p", from_stage="b", to_stage="c", window="7d"), 0.5)
        self.assertEqual(self.get(r, pipeline="p", from_stage="c", to_stage="d", window="7d"), 0.0)

    def test_transition_a_b(self):
        # durations R(b)-R(a): d1 9d=777600, d2 3600, d3 0, d4 3600, d5 86400, d6 0, d8 86400
        h = "crm_funnel_transition_duration_seconds"
        q = "crm_funnel_transition_duration_quantile_seconds"
        lab = dict(pipeline="p", from_stage="a", to_stage="b")
        # 1d: d4, d6 -> [0, 3600]
        self.assertEqual(self.get(h + "_count", window="1d", **lab), 2)
        self.assertEqual(self.get(h + "_sum", window="1d", **lab), 3600.0)
        self.assertEqual(self.get(h + "_bucket", window="1d", le="3600", **lab), 2)
        self.assertEqual(self.get(q, window="1d", quantile="0.5", **lab), 0.0)
        self.assertEqual(self.get(q, window="1d", quantile="0.9", **lab), 3600.0)
        # 7d: d1, d2, d3, d4, d6 -> [0, 0, 3600, 3600, 777600]
        self.assertEqual(self.get(h + "_count", window="7d", **lab), 5)
        self.assertEqual(self.get(h + "_sum", window="7d", **lab), 784800.0)
        self.assertEqual(self.get(h + "_bucket", window="7d", le="604800", **lab), 4)
        self.assertEqual(self.get(h + "_bucket", window="7d", le="1209600", **lab), 5)
        self.assertEqual(self.get(h + "_bucket", window="7d", le="+Inf", **lab), 5)
        self.assertEqual(self.get(q, window="7d", quantile="0.5", **lab), 3600.0)   # rank 3
        self.assertEqual(self.get(q, window="7d", quantile="0.9", **lab), 777600.0)  # rank 5
        # 30d: all seven -> [0, 0, 3600, 3600, 86400, 86400, 777600]
        self.assertEqual(self.get(h + "_sum", window="30d", **lab), 957600.0)
        self.assertEqual(self.get(h + "_bucket", window="30d", le="14400", **lab), 4)
        self.assertEqual(self.get(h + "_bucket", window="30d", le="86400", **lab), 6)
        self.assertEqual(self.get(q, window="30d", quantile="0.5", **lab), 3600.0)  # rank 4

    def test_transition_b_c_and_empty(self):
        # R(c)-R(b): d1 0 (at 9d, outside 1d), d3 4.5d = 388800, d6 0
        h = "crm_funnel_transition_duration_seconds"
        q = "crm_funnel_transition_duration_quantile_seconds"
        lab = dict(pipeline="p", from_stage="b", to_stage="c")
        self.assertEqual(self.get(h + "_count", window="1d", **lab), 2)
        self.assertEqual(self.get(h + "_count", window="7d", **lab), 3)
        self.assertEqual(self.get(h + "_bucket", window="7d", le="259200", **lab), 2)
        self.assertEqual(self.get(h + "_bucket", window="7d", le="604800", **lab), 3)
        self.assertEqual(self.get(q, window="7d", quantile="0.5", **lab), 0.0)
        self.assertEqual(self.get(q, window="7d", quantile="0.9", **lab), 388800.0)
        # won -> post-sale: nobody reached d; zeros exist, quantiles do not.
        lab = dict(pipeline="p", from_stage="c", to_stage="d", window="7d")
        self.assertEqual(self.get(h + "_count", **lab), 0)
        self.assertEqual(self.get(h + "_sum", **lab), 0.0)
        self.assertEqual(self.get(h + "_bucket", le="+Inf", **lab), 0)
        self.absent(q, quantile="0.5", **lab)
        # there is no transition d -> anything
        self.assertFalse(any('from_stage="d"' in k for k in self.m))

    def test_time_to_close(self):
        # R(c)-C: d1 777600, d3 388800, d6 0
        h = "crm_funnel_time_to_close_seconds"
        q = "crm_funnel_time_to_close_quantile_seconds"
        self.assertEqual(self.get(h + "_count", pipeline="p", window="1d"), 2)
        self.assertEqual(self.get(h + "_sum", pipeline="p", window="1d"), 388800.0)
        self.assertEqual(self.get(h + "_sum", pipeline="p", window="7d"), 1166400.0)
        self.assertEqual(self.get(q, pipeline="p", window="7d", quantile="0.5"), 388800.0)
        self.assertEqual(self.get(q, pipeline="p", window="7d", quantile="0.9"), 777600.0)

    def test_won_lost(self):
        # won: 1d d3, d6; 7d/30d + d1. lost: d4 (9d5h), d8 (-13d); d3 reopened -> not lost.
        for w, won, lost in (("1d", 2, 1), ("7d", 3, 1), ("30d", 3, 2)):
            self.assertEqual(self.get("crm_funnel_won_deals", pipeline="p", window=w), won)
            self.assertEqual(self.get("crm_funnel_lost_deals", pipeline="p", window=w), lost)
            self.assertEqual(self.get("crm_funnel_win_rate_ratio", pipeline="p", window=w),
                             won / (won + lost))
        r = "crm_funnel_lost_reason_deals"
        self.assertEqual(self.get(r, pipeline="p", window="1d", reason="unspecified"), 1)
        self.absent(r, pipeline="p", window="1d", reason="timing")
        self.assertEqual(self.get(r, pipeline="p", window="30d", reason="timing"), 1)
        self.absent(r, pipeline="p", window="30d", reason="price")

    def test_activities(self):
        a = "crm_funnel_activities"
        self.assertEqual(self.get(a, pipeline="p", window="1d", activity="call"), 2)
        self.assertEqual(self.get(a, pipeline="p", window="1d", activity="meeting"), 1)
        self.absent(a, pipeline="p", window="7d", activity="email")  # at 2d
        self.assertEqual(self.get(a, pipeline="p", window="30d", activity="email"), 1)

    def test_open_and_stuck(self):
        # open: d2 at a (moved back, age 1d22h > 1d: stuck), d6 at a (tie-break, age 0),
        # d5 at b (age 8d > 2d: stuck). d1, d3 won; d4, d8 lost; dx has no stage.
        o = "crm_funnel_open_deals"
        for s, c in zip("abcd", (2, 1, 0, 0)):
            self.assertEqual(self.get(o, pipeline="p", funnel_stage=s), c, s)
        st = "crm_funnel_stuck_deals"
        self.assertEqual(self.get(st, pipeline="p", funnel_stage="a"), 1)
        self.assertEqual(self.get(st, pipeline="p", funnel_stage="b"), 1)
        self.absent(st, pipeline="p", funnel_stage="c")
        # amounts: d2 250 (updated) + d6 none (0) in USD (pipeline default);
        # d5: 30 from the activity event, currency EUR from its creation.
        am = "crm_funnel_open_amount"
        self.assertEqual(self.get(am, pipeline="p", funnel_stage="a", currency="USD"), 250.0)
        self.assertEqual(self.get(am, pipeline="p", funnel_stage="b", currency="EUR"), 30.0)
        self.assertEqual(len([k for k in self.m if k.startswith(am + "{")]), 2)

    def test_arrival_order_irrelevant(self):
        samples, _ = fo.run(cfg_p(), list(reversed(SCENARIO[1:26])) + SCENARIO[:1],
                            now_ms=lambda: NOW)
        self.assertEqual(as_dict(samples), self.m)


class OverrideAndEdgeTest(unittest.TestCase):
    def test_t_override_excludes_later_events(self):
        # at T' = 9d: only events <= 9d are used; d1's win at 9d counts in 1d.
        samples, _ = fo.run(cfg_p(), SCENARIO, t_ms=at(9), now_ms=lambda: NOW)
        m = as_dict(samples)
        self.assertEqual(m[key("crm_funnel_won_deals", pipeline="p", window="1d")], 1)
        self.assertEqual(m[key("crm_funnel_lost_deals", pipeline="p", window="30d")], 1)
        # d3 is open at b again at 9d (reopened @7d, age 2d == sla: not stuck, strict)
        self.assertEqual(m[key("crm_funnel_open_deals", pipeline="p", funnel_stage="b")], 2)
        self.assertEqual(m[key("crm_funnel_stuck_deals", pipeline="p", funnel_stage="b")], 1)
        self.assertEqual(m[key("crm_funnel_evaluation_timestamp_seconds")], at(9) / 1000)

    def test_empty_input(self):
        samples, store = fo.run(cfg_p(), [], now_ms=lambda: NOW)
        self.assertEqual(samples, [])
        samples, _ = fo.run(cfg_p(), [], t_ms=T, now_ms=lambda: NOW)
        m = as_dict(samples)
        self.assertEqual(m[key("crm_funnel_stage_entries", pipeline="p",
                               funnel_stage="a", window="1d")], 0)
        names = {k.split("{")[0] for k in m}
        self.assertFalse(any(n.endswith(("_ratio", "_quantile_seconds")) for n in names))
        self.assertIn("crm_funnel_transition_duration_seconds_count", names)

    def test_zero_amount_series_exists(self):
        samples, _ = fo.run(cfg_p(), [line("x", "x", "deal_created", T, stage="b")],
                            now_ms=lambda: NOW)
        m = as_dict(samples)
        self.assertEqual(m[key("crm_funnel_open_amount", pipeline="p",
                               funnel_stage="b", currency="USD")], 0.0)

    def test_lost_reopened_won_and_lost_after_won(self):
        evs = [line("1", "x", "deal_created", at(9), stage="a"),
               line("2", "x", "deal_lost", at(9, 1), lost_reason="price"),
               line("3", "x", "deal_reopened", at(9, 2), stage="d"),  # reopened past won
               line("4", "y", "deal_won", at(9, 3)),  # won without ever being created
               line("5", "y", "deal_lost", at(9, 4))]
        m = as_dict(fo.run(cfg_p(), evs, now_ms=lambda: NOW)[0])
        g = lambda n, **l: m[key(n, pipeline="p", window="1d", **l)]
        # x: R = [9, 9h2, 9h2, 9h2]; state won (d is after won). y: R = [9h3]*3 + [-], lost.
        self.assertEqual(g("crm_funnel_won_deals"), 2)
        self.assertEqual(g("crm_funnel_lost_deals"), 1)
        self.assertEqual(g("crm_funnel_lost_reason_deals", reason="unspecified"), 1)
        self.assertEqual(g("crm_funnel_stage_entries", funnel_stage="d"), 1)
        self.assertEqual(g("crm_funnel_transition_duration_seconds_sum",
                           from_stage="a", to_stage="b"), 7200.0)
        self.assertEqual(g("crm_funnel_time_to_close_seconds_sum"), 7200.0)

    def test_top_20(self):
        counts = {f"k{i:02d}": i for i in range(1, 23)}   # 22 kinds, k01=1 .. k22=22
        self.assertEqual(fo.top_n(counts),
                         dict({f"k{i:02d}": i for i in range(3, 23)}, other=3))
        ties = {f"t{i:02d}": 1 for i in range(25)}
        kept = fo.top_n(ties)
        self.assertEqual(sorted(kept), ["other"] + [f"t{i:02d}" for i in range(20)])
        self.assertEqual(kept["other"], 5)
        # "other" and "unspecified" are never ranked: the 20 are k00..k19.
        with_other = dict({f"k{i:02d}": 5 for i in range(21)}, other=9, unspecified=50, z=1)
        kept = fo.top_n(with_other)
        self.assertEqual(sorted(kept), ["k%02d" % i for i in range(20)] + ["other", "unspecified"])
        self.assertEqual((kept["other"], kept["unspecified"]), (9 + 5 + 1, 50))  # k20 and z folded in
        self.assertEqual(fo.top_n({"a": 1, "unspecified": 2}), {"a": 1, "unspecified": 2})
        self.assertEqual(fo.top_n({"a": 1, "other": 2}), {"a": 1, "other": 2})

    def test_default_pipeline(self):
        cfg = fo.Config({})
        self.assertEqual([w for w, _ in cfg.windows], ["1d", "7d", "30d", "90d"])
        evs = [line("1", "x", "deal_created", T - 4 * D, pipeline=None, stage="contact"),
               line("2", "y", "deal_won", T, pipeline=None, stage="won")]
        m = as_dict(fo.run(cfg, evs, now_ms=lambda: NOW)[0])
        stuck = sorted(k for k in m if k.startswith("crm_funnel_stuck_deals"))
        self.assertEqual(len(stuck), 4)
        self.assertEqual(m[key("crm_funnel_stuck_deals", pipeline="default",
                               funnel_stage="contact")], 1)   # 4d > 3d
        self.assertEqual(len([k for k in m if k.startswith("crm_funnel_open_deals")]), 7)
        self.assertEqual(m[key("crm_funnel_won_deals", pipeline="default", window="1d")], 1)
        self.assertEqual(m[key("crm_funnel_stage_entries", pipeline="default",
                               funnel_stage="negotiation", window="1d")], 1)


# §5.2 scenario (pipeline p, currency USD; breakdowns = ["source"], limit 20):
#   n1: created a @8d (ads), won @8d12h          C = 8d
#   n2: created a @5d (ads, amount 40)           C = 5d, open at a
#   n3: created a @-5d (fair), won @6d           C = -5d
#   n4: created b @8d (no source)                C = R(a) = 8d, open at b
#   n5: created a @9d6h (ads)                    C = 9d6h, open at a
#   spend (currency: the event's, else USD):
#     s-old @-25d 9 ads     arrives first (not too_old), outside retention at T
#     s1 @9d20h 100 ads USD  s2 @4d 50.5 ads EUR    s3 @-2d 30 fair USD
#     s4 @9d1h 20 (no source) USD                   s5 @2d 7 "tv" "usd", deal_id "ghost"
#     s7 @9d2h 0 fair USD, deal_id "n2" (not n2's event), stage "zz" (ignored)
#   duplicates: a spend reusing "n1-c", a deal event reusing "s1".
SPEND_EVENTS = [
    spend_line("s-old", at(-25), 9, source="ads"),
    line("n1-c", "n1", "deal_created", at(8), stage="a", source="ads"),
    line("n1-w", "n1", "deal_won", at(8, 12)),
    line("n2-c", "n2", "deal_created", at(5), stage="a", source="ads", amount=40),
    line("n3-c", "n3", "deal_created", at(-5), stage="a", source="fair"),
    line("n3-w", "n3", "deal_won", at(6)),
    line("n4-c", "n4", "deal_created", at(8), stage="b"),
    line("n5-c", "n5", "deal_created", at(9, 6), stage="a", source="ads"),
    spend_line("s1", at(9, 20), 100, source="ads"),
    spend_line("s2", at(4), 50.5, source="ads", currency="EUR"),
    spend_line("s3", at(-2), 30, source="fair", currency="USD"),
    spend_line("s4", at(9, 1), 20),
    spend_line("s5", at(2), 7, source="tv", currency="usd", deal_id="ghost"),
    spend_line("s7", at(9, 2), 0, source="fair", deal_id="n2", stage="zz"),
    spend_line("n1-c", at(9), 1000, source="ads"),
    line("s1", "n6", "deal_created", at(9), stage="a", source="x"),
]


class SpendTest(MetricsCase):
    EVENTS = SPEND_EVENTS
    TOP = 'breakdowns = ["source"]\n'

    def test_summary(self):
        # 7 deal events (n1 2, n2 1, n3 2, n4 1, n5 1) + 7 spend events (s-old,
        # s1..s5, s7) accepted; the two reused ids are duplicates
        self.assertEqual(self.store.summary(),
                         {"accepted": 14, "duplicates": 2, "rejected": {}})

    def test_pipeline_spend(self):
        s = "crm_funnel_acquisition_spend"
        # 1d (9d,10d]: s1 100 + s4 20 + s7 0 (USD); s-old is outside retention
        self.assertEqual(self.get(s, window="1d", currency="USD"), 120.0)
        self.absent(s, window="1d", currency="EUR")           # s2 is at 4d
        # 7d (3d,10d]: USD 120 (s3 at -2d is outside), EUR s2 50.5
        self.assertEqual(self.get(s, window="7d", currency="USD"), 120.0)
        self.assertEqual(self.get(s, window="7d", currency="EUR"), 50.5)
        self.absent(s, window="7d", currency="usd")           # s5 is at 2d
        # 30d: USD 100+20+30+0 = 150, EUR 50.5, "usd" (kept as written) 7
        self.assertEqual(self.get(s, window="30d", currency="USD"), 150.0)
        self.assertEqual(self.get(s, window="30d", currency="EUR"), 50.5)
        self.assertEqual(self.get(s, window="30d", currency="usd"), 7.0)
        self.assertEqual(len([k for k in self.m if k.startswith(s + "{")]), 6)

    def test_cost_per_lead_and_cac(self):
        cpl = "crm_funnel_cost_per_lead"
        cac = "crm_funnel_customer_acquisition_cost"
        # N = #{d: C(d) in W}: 1d n5 = 1; 7d n1 n2 n4 n5 = 4; 30d + n3 = 5
        # won: 1d none; 7d n1 (8d12h) n3 (6d) = 2; 30d 2
        self.assertEqual(self.get("crm_funnel_cohort_deals", window="7d", funnel_stage="a"), 4)
        self.assertEqual(self.get(cpl, window="1d", currency="USD"), 120.0)   # 120 / 1
        self.absent(cac, window="1d", currency="USD")                         # won = 0
        self.assertEqual(self.get(cpl, window="7d", currency="USD"), 30.0)    # 120 / 4
        self.assertEqual(self.get(cpl, window="7d", currency="EUR"), 12.625)  # 50.5 / 4
        self.assertEqual(self.get(cac, window="7d", currency="USD"), 60.0)    # 120 / 2
        self.assertEqual(self.get(cac, window="7d", currency="EUR"), 25.25)   # 50.5 / 2
        self.assertEqual(self.get(cpl, window="30d", currency="USD"), 30.0)   # 150 / 5
        self.assertEqual(self.get(cpl, window="30d", currency="EUR"), 50.5 / 5)
        self.assertEqual(self.get(cpl, window="30d", currency="usd"), 7 / 5)
        self.assertEqual(self.get(cac, window="30d", currency="USD"), 75.0)   # 150 / 2
        self.assertEqual(self.get(cac, window="30d", currency="usd"), 3.5)    # 7 / 2
        self.absent(cpl, window="1d", currency="EUR")      # no spend series, no cost

    def test_spend_belongs_to_no_deal(self):
        # s5's deal_id "ghost" made no deal: "tv" is carried by no deal, so it is
        # not ranked and s5 falls in `other`; s7 did not make n2's source
        # "fair" (ads keeps n1 n2 n5) nor its amount 0 (open amount a = 40).
        self.assertEqual(self.segments("source"), {"ads", "fair", "other", "unspecified"})
        self.assertEqual(self.get("crm_funnel_open_amount", funnel_stage="a", currency="USD"),
                         40.0)                                  # n2 40 + n5 none
        self.assertEqual(self.get("crm_funnel_open_deals", funnel_stage="a"), 2)
        self.assertEqual(self.get("crm_funnel_stage_entries", window="30d", funnel_stage="a"),
                         5)                                     # n1..n5; no ghost, no n6

    def test_segment_spend(self):
        s = "crm_funnel_segment_acquisition_spend"
        cpl = "crm_funnel_segment_cost_per_lead"
        cac = "crm_funnel_segment_customer_acquisition_cost"
        ads = dict(dimension="source", segment="ads")
        # ads: deals n1 n2 n5; spend s1 (USD 100 @9d20h), s2 (EUR 50.5 @4d)
        # 1d: N = n5 = 1, won 0
        self.assertEqual(self.get(s, window="1d", currency="USD", **ads), 100.0)
        self.assertEqual(self.get(cpl, window="1d", currency="USD", **ads), 100.0)
        self.absent(cac, window="1d", currency="USD", **ads)
        # 7d: N = n1 n2 n5 = 3, won n1 = 1
        self.assertEqual(self.get(cpl, window="7d", currency="USD", **ads), 100 / 3)
        self.assertEqual(self.get(cpl, window="7d", currency="EUR", **ads), 50.5 / 3)
        self.assertEqual(self.get(cac, window="7d", currency="USD", **ads), 100.0)
        self.assertEqual(self.get(cac, window="7d", currency="EUR", **ads), 50.5)
        fair = dict(dimension="source", segment="fair")
        # fair: deal n3 (C -5d, won 6d); spend s3 (USD 30 @-2d), s7 (USD 0 @9d2h)
        self.assertEqual(self.get(s, window="1d", currency="USD", **fair), 0.0)  # s7: exists
        self.absent(cpl, window="1d", currency="USD", **fair)                    # N 0
        self.absent(cac, window="1d", currency="USD", **fair)                    # won 0
        self.assertEqual(self.get(cac, window="7d", currency="USD", **fair), 0.0)  # 0 / 1
        self.absent(cpl, window="7d", currency="USD", **fair)
        self.assertEqual(self.get(s, window="30d", currency="USD", **fair), 30.0)
        self.assertEqual(self.get(cpl, window="30d", currency="USD", **fair), 30.0)  # 30 / 1
        self.assertEqual(self.get(cac, window="30d", currency="USD", **fair), 30.0)  # 30 / 1
        # other: only s5 ("tv", "usd" 7 @2d); no deals
        other = dict(dimension="source", segment="other")
        self.assertEqual(self.get(s, window="30d", currency="usd", **other), 7.0)
        self.absent(s, window="7d", currency="usd", **other)
        self.absent(cpl, window="30d", currency="usd", **other)
        self.absent(cac, window="30d", currency="usd", **other)
        self.assertEqual(self.get("crm_funnel_segment_stage_entries", window="30d",
                                  funnel_stage="a", **other), 0)   # zero-filled
        self.assertEqual(self.get("crm_funnel_segment_open_deals", **other), 0)
        # unspecified: deal n4 (no source, C 8d, open at b), spend s4 (USD 20 @9d1h)
        un = dict(dimension="source", segment="unspecified")
        self.assertEqual(self.get(s, window="1d", currency="USD", **un), 20.0)
        self.absent(cpl, window="1d", currency="USD", **un)                # N 0
        self.assertEqual(self.get(cpl, window="7d", currency="USD", **un), 20.0)  # 20 / 1
        self.absent(cac, window="7d", currency="USD", **un)                # won 0
        # the segments add up to the pipeline: 30d USD ads 100 + fair 30 + unspecified 20
        total = sum(v for k, v in self.m.items()
                    if k.startswith(s + "{") and 'currency="USD"' in k and 'window="30d"' in k)
        self.assertEqual(total, 150.0)

    def test_segment_open(self):
        o, am = "crm_funnel_segment_open_deals", "crm_funnel_segment_open_amount"
        # ads: n2 (a, 40) and n5 (a, none) open, n1 won
        self.assertEqual(self.get(o, dimension="source", segment="ads"), 2)
        self.assertEqual(self.get(am, dimension="source", segment="ads", currency="USD"), 40.0)
        # fair: n3 won -> 0 open, no amount series
        self.assertEqual(self.get(o, dimension="source", segment="fair"), 0)
        self.absent(am, dimension="source", segment="fair", currency="USD")
        # unspecified: n4 open without an amount: the series exists at 0
        self.assertEqual(self.get(am, dimension="source", segment="unspecified",
                                  currency="USD"), 0.0)

    def test_no_deal_in_window_but_spend(self):
        # At T' = 9d3h: 1d = (8d3h, 9d3h]. No deal entered (n1, n4 at 8d; n5 later),
        # n1 was won at 8d12h, spend s4 20 + s7 0 USD: CAC 20 / 1, no cost per lead.
        m = as_dict(fo.run(cfg_with(self.TOP), SPEND_EVENTS, t_ms=at(9, 3),
                           now_ms=lambda: NOW)[0])
        lab = dict(pipeline="p", window="1d", currency="USD")
        self.assertEqual(m[key("crm_funnel_acquisition_spend", **lab)], 20.0)
        self.assertEqual(m[key("crm_funnel_customer_acquisition_cost", **lab)], 20.0)
        self.assertNotIn(key("crm_funnel_cost_per_lead", **lab), m)


# §5.3 / §5.4 feedback scenario (breakdowns = ["team"]):
#   f1 (team red): created a @1d; csat 1 @-10d, nps 8 @5d, nps 9 @5d1h,
#                  csat 3 @9d12h, csat 4 @9d13h, nps 6 @9d14h, nps 7 @9d15h
#   f2 (feedback only, team blue): nps 10 @9d20h, csat 2 @9d21h, csat 5 @9d23h
#   f3: created a @2d team red; nps 0 @9d22h carrying team blue -> blue at T
#   f4, f5: rejected (score 4.0; nps 11) and make no deal
FEEDBACK_EVENTS = [
    line("f1-c", "f1", "deal_created", at(1), stage="a", team="red"),
    line("f1-q1", "f1", "feedback", at(-10), survey="csat", score=1),
    line("f1-q2", "f1", "feedback", at(5), survey="nps", score=8),
    line("f1-q3", "f1", "feedback", at(5, 1), survey="nps", score=9),
    line("f1-q4", "f1", "feedback", at(9, 12), survey="csat", score=3),
    line("f1-q5", "f1", "feedback", at(9, 13), survey="csat", score=4),
    line("f1-q6", "f1", "feedback", at(9, 14), survey="nps", score=6),
    line("f1-q7", "f1", "feedback", at(9, 15), survey="nps", score=7, activity=""),
    line("f2-q1", "f2", "feedback", at(9, 20), survey="nps", score=10, team="blue"),
    line("f2-q2", "f2", "feedback", at(9, 21), survey="csat", score=2, stage="zz"),
    line("f2-q3", "f2", "feedback", at(9, 23), survey="csat", score=5),
    line("f3-c", "f3", "deal_created", at(2), stage="a", team="red"),
    line("f3-q1", "f3", "feedback", at(9, 22), survey="nps", score=0, team="blue"),
    line("f4-x", "f4", "feedback", at(9, 22), survey="csat", score=4.0),
    line("f5-x", "f5", "feedback", at(9, 22), survey="nps", score=11),
]


class FeedbackTest(MetricsCase):
    EVENTS = FEEDBACK_EVENTS
    TOP = 'breakdowns = ["team"]\n'

    def test_summary(self):
        self.assertEqual(self.store.summary(),
                         {"accepted": 13, "duplicates": 0, "rejected": {"invalid_field": 2}})

    def test_histograms(self):
        h = "crm_funnel_feedback_score"
        # 1d (9d,10d]: csat [3, 4, 2, 5], nps [6, 7, 10, 0]
        csat = dict(window="1d", survey="csat")
        for le, c in (("0", 0), ("1", 0), ("2", 1), ("3", 2), ("4", 3), ("5", 4),
                      ("10", 4), ("+Inf", 4)):
            self.assertEqual(self.get(h + "_bucket", le=le, **csat), c, le)
        self.assertEqual(self.get(h + "_sum", **csat), 14.0)
        self.assertEqual(self.get(h + "_count", **csat), 4)
        nps = dict(window="1d", survey="nps")
        for le, c in (("0", 1), ("5", 1), ("6", 2), ("7", 3), ("8", 3), ("9", 3),
                      ("10", 4), ("+Inf", 4)):
            self.assertEqual(self.get(h + "_bucket", le=le, **nps), c, le)
        self.assertEqual(self.get(h + "_sum", **nps), 23.0)
        # 30d adds csat 1 (@-10d): [1, 2, 3, 4, 5]
        self.assertEqual(self.get(h + "_bucket", window="30d", survey="csat", le="1"), 1)
        self.assertEqual(self.get(h + "_sum", window="30d", survey="csat"), 15.0)
        # 12 buckets (0..10, +Inf) + sum + count, per survey and window
        self.assertEqual(len([k for k in self.m if k.startswith(h)]), 14 * 2 * 3)

    def test_ratios(self):
        # csat >= 4: 1d/7d [3,4,2,5] -> 4, 5 = 2/4; 30d [1,2,3,4,5] -> 2/5
        self.assertEqual(self.get("crm_funnel_csat_ratio", window="1d"), 0.5)
        self.assertEqual(self.get("crm_funnel_csat_ratio", window="7d"), 0.5)
        self.assertEqual(self.get("crm_funnel_csat_ratio", window="30d"), 0.4)
        nps = "crm_funnel_net_promoter_score"
        # 1d [6,7,10,0]: promoters {10} = 1, detractors {6, 0} = 2 -> 100 * (1 - 2) / 4
        self.assertEqual(self.get(nps, window="1d"), -25.0)
        # 7d adds 8 (passive) and 9 (promoter): 100 * (2 - 2) / 6
        self.assertEqual(self.get(nps, window="7d"), 0.0)

    def test_segment_bands_and_edges(self):
        fr = "crm_funnel_segment_feedback_responses"
        # teams at T: f1 red; f2 blue; f3 blue (its feedback carried team blue,
        # the last event that carries it, §4) -> ranked blue 2, red 1
        self.assertEqual(self.segments("team"), {"blue", "red"})   # f4/f5 made no deal
        red = dict(dimension="team", segment="red")
        # red 1d: csat 3 neutral, 4 satisfied (edge 3|4); nps 6 detractor, 7 passive (edge 6|7)
        want = {("csat", "dissatisfied"): 0, ("csat", "neutral"): 1, ("csat", "satisfied"): 1,
                ("nps", "detractor"): 1, ("nps", "passive"): 1, ("nps", "promoter"): 0}
        for (survey, band), c in want.items():
            self.assertEqual(self.get(fr, window="1d", survey=survey, band=band, **red),
                             c, (survey, band))
        self.assertEqual(self.get("crm_funnel_segment_csat_ratio", window="1d", **red), 0.5)
        self.assertEqual(self.get("crm_funnel_segment_net_promoter_score", window="1d", **red),
                         -50.0)                                    # 100 * (0 - 1) / 2
        # red 7d adds nps 8 passive, 9 promoter (edge 8|9): 100 * (1 - 1) / 4
        self.assertEqual(self.get(fr, window="7d", survey="nps", band="passive", **red), 2)
        self.assertEqual(self.get(fr, window="7d", survey="nps", band="promoter", **red), 1)
        self.assertEqual(self.get("crm_funnel_segment_net_promoter_score", window="7d", **red),
                         0.0)
        # red 30d adds csat 1 dissatisfied: 1 satisfied of 3
        self.assertEqual(self.get("crm_funnel_segment_csat_ratio", window="30d", **red), 1 / 3)
        blue = dict(dimension="team", segment="blue")
        # blue 1d: f2 nps 10, csat 2, csat 5; f3 nps 0 -> csat 1 of 2; nps 100 * (1 - 1) / 2
        self.assertEqual(self.get(fr, window="1d", survey="nps", band="detractor", **blue), 1)
        self.assertEqual(self.get(fr, window="1d", survey="csat", band="neutral", **blue), 0)
        self.assertEqual(self.get("crm_funnel_segment_csat_ratio", window="1d", **blue), 0.5)
        self.assertEqual(self.get("crm_funnel_segment_net_promoter_score", window="1d", **blue),
                         0.0)
        # every band of both surveys, per existing segment and window: 6 * 2 * 3
        self.assertEqual(len([k for k in self.m if k.startswith(fr + "{")]), 36)

    def test_feedback_only_deal(self):
        # f2 has only feedback events: a deal with no stage, never open
        self.assertEqual(self.get("crm_funnel_stage_entries", window="30d", funnel_stage="a"),
                         2)                                        # f1, f3
        self.assertEqual(self.get("crm_funnel_segment_open_deals", dimension="team",
                                  segment="blue"), 1)              # f3; f2 has no stage
        self.assertEqual(self.get("crm_funnel_segment_stage_entries", window="30d",
                                  funnel_stage="a", dimension="team", segment="blue"), 1)
        self.absent("crm_funnel_segment_win_rate_ratio", window="30d",
                    dimension="team", segment="blue")              # won 0 + lost 0

    def test_one_survey_only(self):
        # only f1's creation and its csat 3: the nps histogram exists at zero,
        # the NPS does not; a CSAT of 0 satisfied / 1 exists at 0.0
        m = as_dict(fo.run(cfg_with(self.TOP), [FEEDBACK_EVENTS[0], FEEDBACK_EVENTS[4]],
                           t_ms=T, now_ms=lambda: NOW)[0])
        g = lambda n, **l: m.get(key(n, pipeline="p", window="1d", **l))
        self.assertEqual(g("crm_funnel_feedback_score_count", survey="nps"), 0)
        self.assertEqual(g("crm_funnel_feedback_score_bucket", survey="nps", le="+Inf"), 0)
        self.assertIsNone(g("crm_funnel_net_promoter_score"))
        self.assertEqual(g("crm_funnel_csat_ratio"), 0.0)
        red = dict(dimension="team", segment="red")
        self.assertEqual(g("crm_funnel_segment_feedback_responses", survey="nps",
                           band="promoter", **red), 0)
        self.assertIsNone(g("crm_funnel_segment_net_promoter_score", **red))
        self.assertEqual(g("crm_funnel_segment_csat_ratio", **red), 0.0)


# §5.4 ranking scenario (sources; r2 alone has an owner "amy"):
#   r0:  created a @-25d "web": evicted at T (retention 30d keeps (-20d,10d])
#   r11: created a @-25d "web" (evicted), stage_changed b @5d: no source at T
#   r1:  created a @1d "web", b @3d, updated source "ads" @9d: moves to ads
#   r2:  created a @9d1h "ads" (owner amy), won @9d2h
#   r3:  created a @9d3h "web", lost @9d4h
#   r4:  created a @5d "apple"
#   r5:  created a @6d "Zoo", won @9d5h
#   r6:  created a @9d6h literally "other", won @9d7h
#   r7:  created a @2d "" (empty: no value)
#   r8:  created b @9d8h, no source
#   r9:  created a @4d literally "unspecified", lost @9d9h
RANK_EVENTS = [
    line("r0-c", "r0", "deal_created", at(-25), stage="a", source="web"),
    line("r11-c", "r11", "deal_created", at(-25), stage="a", source="web"),
    line("r11-b", "r11", "stage_changed", at(5), stage="b"),
    line("r1-c", "r1", "deal_created", at(1), stage="a", source="web"),
    line("r1-b", "r1", "stage_changed", at(3), stage="b"),
    line("r1-u", "r1", "deal_updated", at(9), source="ads"),
    line("r2-c", "r2", "deal_created", at(9, 1), stage="a", source="ads", owner="amy"),
    line("r2-w", "r2", "deal_won", at(9, 2)),
    line("r3-c", "r3", "deal_created", at(9, 3), stage="a", source="web"),
    line("r3-l", "r3", "deal_lost", at(9, 4)),
    line("r4-c", "r4", "deal_created", at(5), stage="a", source="apple"),
    line("r5-c", "r5", "deal_created", at(6), stage="a", source="Zoo"),
    line("r5-w", "r5", "deal_won", at(9, 5)),
    line("r6-c", "r6", "deal_created", at(9, 6), stage="a", source="other"),
    line("r6-w", "r6", "deal_won", at(9, 7)),
    line("r7-c", "r7", "deal_created", at(2), stage="a", source=""),
    line("r8-c", "r8", "deal_created", at(9, 8), stage="b"),
    line("r9-c", "r9", "deal_created", at(4), stage="a", source="unspecified"),
    line("r9-l", "r9", "deal_lost", at(9, 9)),
]


class SegmentRankingTest(MetricsCase):
    EVENTS = RANK_EVENTS
    TOP = 'breakdowns = ["source", "owner"]\nbreakdown_limit = 2\n'

    def test_top_n_with_ties(self):
        # sources at T over the retained events: ads 2 (r1 moved, r2), then a tie
        # at 1 between web (r3), apple (r4), Zoo (r5), broken byte-wise:
        # "Zoo" (0x5A) < "apple" (0x61) < "web". r0 and r11's "web" are evicted
        # (else web would be first with 3); "other"/"unspecified"/"" are not ranked.
        self.assertEqual(self.segments("source"), {"ads", "Zoo", "other", "unspecified"})
        # owner: only amy; no deal falls in `other`, so that series does not exist
        self.assertEqual(self.segments("owner"), {"amy", "unspecified"})

    def test_segment_funnel_1d(self):
        # ads {r1, r2}, Zoo {r5}, other {r3 web, r4 apple, r6 "other"},
        # unspecified {r7 "", r8 none, r9 "unspecified", r11}
        # R in 1d (9d,10d]: r2 a b c; r5 b c (a at 6d); r3 a; r6 a b c; r8 a b
        expected = {"ads": [1, 1, 1, 0], "Zoo": [0, 1, 1, 0],
                    "other": [2, 1, 1, 0], "unspecified": [1, 1, 0, 0]}
        # cohort: C in 1d: r2 (ads), r3 + r6 (other), r8 (unspecified)
        cohort = {"ads": [1, 1, 1, 0], "Zoo": [0, 0, 0, 0],
                  "other": [2, 1, 1, 0], "unspecified": [1, 1, 0, 0]}
        for seg in expected:
            lab = dict(window="1d", dimension="source", segment=seg)
            for s, c, k in zip("abcd", expected[seg], cohort[seg]):
                self.assertEqual(self.get("crm_funnel_segment_stage_entries",
                                          funnel_stage=s, **lab), c, (seg, s))
                self.assertEqual(self.get("crm_funnel_segment_cohort_deals",
                                          funnel_stage=s, **lab), k, (seg, s))
        # sum over segments = pipeline: a 1+0+2+1 = 4 (r2 r3 r6 r8)
        self.assertEqual(self.get("crm_funnel_stage_entries", window="1d", funnel_stage="a"), 4)
        # 7d (3d,10d]: unspecified R(a): r8 9d8h, r9 4d, r11 5d (its E(a) evicted,
        # R(a) = E(b) = 5d); r7 at 2d is outside -> a 3, b 2 (r8, r11)
        lab = dict(window="7d", dimension="source", segment="unspecified")
        self.assertEqual(self.get("crm_funnel_segment_stage_entries", funnel_stage="a", **lab), 3)
        self.assertEqual(self.get("crm_funnel_segment_stage_entries", funnel_stage="b", **lab), 2)

    def test_segment_outcomes(self):
        w, l, r = ("crm_funnel_segment_won_deals", "crm_funnel_segment_lost_deals",
                   "crm_funnel_segment_win_rate_ratio")
        # 1d: ads won r2; Zoo won r5; other won r6, lost r3; unspecified lost r9
        for seg, won, lost in (("ads", 1, 0), ("Zoo", 1, 0), ("other", 1, 1),
                               ("unspecified", 0, 1)):
            lab = dict(window="1d", dimension="source", segment=seg)
            self.assertEqual(self.get(w, **lab), won, seg)
            self.assertEqual(self.get(l, **lab), lost, seg)
            self.assertEqual(self.get(r, **lab), won / (won + lost), seg)
        q = "crm_funnel_segment_time_to_close_quantile_seconds"
        # R(won) - C: r2 1h, r5 9d5h - 6d = 3d5h = 277200 s, r6 1h
        for seg, v in (("ads", 3600.0), ("Zoo", 277200.0), ("other", 3600.0)):
            for quant in ("0.5", "0.9"):
                self.assertEqual(self.get(q, window="30d", quantile=quant,
                                          dimension="source", segment=seg), v, seg)
        self.absent(q, window="30d", quantile="0.5", dimension="source", segment="unspecified")

    def test_segment_open(self):
        o = "crm_funnel_segment_open_deals"
        # open: ads r1 (at b; r2 won); Zoo none; other r4; unspecified r7, r8, r11 (r9 lost)
        for seg, c in (("ads", 1), ("Zoo", 0), ("other", 1), ("unspecified", 3)):
            self.assertEqual(self.get(o, dimension="source", segment=seg), c, seg)
        self.assertEqual(self.get(o, dimension="owner", segment="amy"), 0)      # r2 won
        self.assertEqual(self.get(o, dimension="owner", segment="unspecified"), 5)
        am = "crm_funnel_segment_open_amount"
        # no amounts: each segment with an open deal has a USD series at 0
        self.assertEqual(self.get(am, dimension="source", segment="other", currency="USD"), 0.0)
        self.absent(am, dimension="source", segment="Zoo", currency="USD")
        # no responses: bands at 0, no ratios; no spend: no spend series
        self.assertEqual(self.get("crm_funnel_segment_feedback_responses", window="7d",
                                  survey="csat", band="neutral", dimension="source",
                                  segment="Zoo"), 0)
        self.assertFalse(any(k.startswith(("crm_funnel_segment_csat_ratio",
                                           "crm_funnel_segment_acquisition_spend"))
                             for k in self.m))

    def test_spend_literal_values(self):
        # spend by its own source: "other" -> other, "" and "unspecified" ->
        # unspecified, "Zoo" (listed) -> Zoo, "web" (unlisted) -> other
        extra = [spend_line("x1", at(9), 1, source="other"),
                 spend_line("x2", at(9), 2, source=""),
                 spend_line("x3", at(9), 4, source="unspecified"),
                 spend_line("x4", at(9), 8, source="Zoo"),
                 spend_line("x5", at(9), 16, source="web")]
        m = as_dict(fo.run(cfg_with(self.TOP), RANK_EVENTS + extra, t_ms=T,
                           now_ms=lambda: NOW)[0])
        s = lambda seg: m.get(key("crm_funnel_segment_acquisition_spend", pipeline="p",
                                  window="7d", currency="USD", dimension="source",
                                  segment=seg))
        self.assertEqual((s("other"), s("unspecified"), s("Zoo"), s("ads")),
                         (17.0, 6.0, 8.0, None))
        self.assertIsNone(s("web"))
        # every spend without an owner is owner-unspecified: 1+2+4+8+16
        self.assertEqual(m[key("crm_funnel_segment_acquisition_spend", pipeline="p",
                               window="7d", currency="USD", dimension="owner",
                               segment="unspecified")], 31.0)


class FixedSegmentsTest(MetricsCase):
    EVENTS = RANK_EVENTS
    TOP = 'breakdowns = ["source", "owner"]\n'
    TABLES = '[breakdown_segments]\nsource = ["ads", "webinar", "web"]\n'

    def test_fixed_segments(self):
        # exactly the listed values, plus other {r4 apple, r5 Zoo, r6 "other"} and
        # unspecified {r7, r8, r9, r11}; owner stays top-N (limit 20): amy
        self.assertEqual(self.segments("source"),
                         {"ads", "webinar", "web", "other", "unspecified"})
        self.assertEqual(self.segments("owner"), {"amy", "unspecified"})

    def test_empty_fixed_segment_is_zero_filled(self):
        lab = dict(dimension="source", segment="webinar")
        for w in ("1d", "7d", "30d"):
            for s in "abcd":
                self.assertEqual(self.get("crm_funnel_segment_stage_entries", window=w,
                                          funnel_stage=s, **lab), 0)
                self.assertEqual(self.get("crm_funnel_segment_cohort_deals", window=w,
                                          funnel_stage=s, **lab), 0)
            self.assertEqual(self.get("crm_funnel_segment_won_deals", window=w, **lab), 0)
            self.assertEqual(self.get("crm_funnel_segment_lost_deals", window=w, **lab), 0)
            self.assertEqual(self.get("crm_funnel_segment_feedback_responses", window=w,
                                      survey="nps", band="promoter", **lab), 0)
        self.assertEqual(self.get("crm_funnel_segment_open_deals", **lab), 0)
        webinar = [k for k in self.m if 'segment="webinar"' in k]
        # 3 windows * (4 stages * 2 + won + lost + 6 bands) + open deals = 49
        self.assertEqual(len(webinar), 3 * (8 + 2 + 6) + 1)

    def test_other_now_holds_zoo(self):
        # other 1d: r5 (Zoo) b c, r6 a b c -> entries [1, 2, 2, 0]; won r5, r6
        lab = dict(window="1d", dimension="source", segment="other")
        for s, c in zip("abcd", (1, 2, 2, 0)):
            self.assertEqual(self.get("crm_funnel_segment_stage_entries", funnel_stage=s,
                                      **lab), c, s)
        self.assertEqual(self.get("crm_funnel_segment_win_rate_ratio", **lab), 1.0)
        # web: r3 only (r1 moved to ads): lost at 9d4h -> win rate 0 / 1
        self.assertEqual(self.get("crm_funnel_segment_win_rate_ratio", window="1d",
                                  dimension="source", segment="web"), 0.0)
        self.assertEqual(self.get("crm_funnel_segment_open_deals", dimension="source",
                                  segment="ads"), 1)               # r1 at b


class BreakdownConfigTest(unittest.TestCase):
    def test_defaults(self):
        cfg = cfg_p()
        self.assertEqual(cfg.breakdowns, ["source", "team", "region", "owner"])
        self.assertEqual(cfg.breakdown_limit, 20)
        self.assertEqual(cfg.breakdown_segments, {})
        self.assertEqual(cfg_with("breakdowns = []\n").breakdowns, [])

    def test_invalid(self):
        cases = [
            ('breakdowns = ["source", "channel"]\n', "", "breakdowns"),
            ('breakdowns = "source"\n', "", "breakdowns"),
            ('breakdowns = ["team", "team"]\n', "", "breakdowns"),
            ("breakdown_limit = 0\n", "", "breakdown_limit"),
            ("breakdown_limit = -1\n", "", "breakdown_limit"),
            ("breakdown_limit = 2.5\n", "", "breakdown_limit"),
            ("", '[breakdown_segments]\nsource = ["ads", "other"]\n', "breakdown_segments"),
            ("", '[breakdown_segments]\nteam = ["unspecified"]\n', "breakdown_segments"),
            ("", '[breakdown_segments]\nchannel = ["x"]\n', "breakdown_segments"),
            ("", '[breakdown_segments]\nsource = "ads"\n', "breakdown_segments"),
            ("", '[breakdown_segments]\nsource = [""]\n', "breakdown_segments"),
            ('breakdowns = ["team"]\n', '[breakdown_segments]\nsource = ["ads"]\n',
             "breakdown_segments"),
            ("breakdowns = []\n", '[breakdown_segments]\nowner = ["amy"]\n',
             "breakdown_segments"),
        ]
        for top, tables, name in cases:
            with self.assertRaises(ValueError, msg=(top, tables)) as cm:
                cfg_with(top, tables)
            self.assertIn(name, str(cm.exception), (top, tables))
        # an empty fixed list is valid: only other/unspecified
        cfg = cfg_with('breakdowns = ["source"]\n', "[breakdown_segments]\nsource = []\n")
        self.assertEqual(cfg.breakdown_segments, {"source": []})

    def test_default_breakdowns_on_v1_scenario(self):
        # No SCENARIO event carries source/team/region/owner: by default every
        # dimension has the single segment `unspecified`, equal to the pipeline.
        on = as_dict(fo.run(cfg_p(), SCENARIO, now_ms=lambda: NOW)[0])
        off = as_dict(fo.run(cfg_with("breakdowns = []\n"), SCENARIO, now_ms=lambda: NOW)[0])
        seg = {k: v for k, v in on.items() if k.startswith("crm_funnel_segment_")}
        # with breakdowns = [] the output is exactly the rest (version 1 + 5.2/5.3)
        self.assertEqual({k: v for k, v in on.items() if k not in seg}, off)
        self.assertFalse(any(k.startswith("crm_funnel_segment_") for k in off))
        dims = {}
        for k in seg:
            d = k.split('dimension="')[1].split('"')[0]
            dims.setdefault(d, set()).add(k.split('segment="')[1].split('"')[0])
        self.assertEqual(dims, {d: {"unspecified"} for d in ("source", "team", "region", "owner")})
        g = lambda n, **l: on[key(n, pipeline="p", dimension="region", segment="unspecified", **l)]
        # = test_stage_entries / test_won_lost / test_open_and_stuck of ScenarioTest
        self.assertEqual(g("crm_funnel_segment_stage_entries", window="7d", funnel_stage="b"), 5)
        self.assertEqual(g("crm_funnel_segment_win_rate_ratio", window="30d"), 3 / 5)
        self.assertEqual(g("crm_funnel_segment_time_to_close_quantile_seconds", window="7d",
                           quantile="0.9"), 777600.0)
        self.assertEqual(g("crm_funnel_segment_open_deals"), 3)     # d2, d6 at a; d5 at b
        self.assertEqual(g("crm_funnel_segment_open_amount", currency="USD"), 250.0)
        self.assertEqual(g("crm_funnel_segment_open_amount", currency="EUR"), 30.0)


class ParsingTest(unittest.TestCase):
    def test_durations(self):
        self.assertEqual(fo.parse_duration("5m"), 300_000)
        self.assertEqual(fo.parse_duration("1h30m"), 5_400_000)
        self.assertEqual(fo.parse_duration("2w"), 14 * D)
        self.assertEqual(fo.parse_duration("250ms"), 250)
        self.assertRaises(ValueError, fo.parse_duration, "5x")
        self.assertRaises(ValueError, fo.parse_duration, "")

    def test_rfc3339(self):
        p = fo.parse_rfc3339
        self.assertEqual(p("2023-11-14T22:13:20Z"), T)
        self.assertEqual(p("2023-11-14t23:13:20.9999+01:00"), T + 999)
        self.assertEqual(p("2023-11-14T17:13:20.5-05:00"), T + 500)
        # version 2, §7 "Timestamps": a space instead of "T" is not accepted
        # (version 1 of this test accepted it); "z" is.
        self.assertIsNone(p("2023-11-14 17:13:20.5-05:00"))
        self.assertEqual(p("2023-11-14t22:13:20z"), T)
        # year 0001 is the first accepted: days_from_civil(1, 1, 1) = -719162
        # days -> -719162 * 86400000 ms
        self.assertEqual(p("0001-01-01T00:00:00Z"), -719162 * D)
        self.assertEqual(p("9999-12-31T23:59:59.999Z"), 253402300799999)
        # ASCII digits only: fullwidth "２" (U+FF12) and Arabic-Indic "٢" (U+0662)
        # are digits to Python's \d, not to RFC 3339.
        for bad in ("0000-12-31T00:00:00Z", "\uff12023-11-14T22:13:20Z",
                    "2023-11-14T22:13:2\u0662Z", "2023-11-14T23:59:60Z"):
            self.assertIsNone(p(bad), bad)
        self.assertEqual(p("1969-12-31T23:59:59.9999Z"), -1)   # floor
        self.assertEqual(p("2024-02-29T00:00:00Z"), 1709164800000)
        for bad in ("2023-02-29T00:00:00Z", "2023-11-14T22:13:20", "2023-11-14T24:00:00Z",
                    "2023-11-14T22:13:20.Z", "2023-11-14T22:13:20+0100", "20231114T221320Z"):
            self.assertIsNone(p(bad), bad)


class RejectionTest(unittest.TestCase):
    def reason(self, raw, store=None):
        store = store or fo.Store(cfg_p(), lambda: NOW)
        return store.ingest(raw)

    def test_each_reason(self):
        ok = dict(event_id="e", deal_id="x", type="deal_created", occurred_at=T,
                  pipeline="p", stage="a")

        def mk(**changes):
            obj = dict(ok)
            for k, v in changes.items():
                if v is KeyError:
                    obj.pop(k)
                else:
                    obj[k] = v
            return json.dumps(obj).encode()

        cases = [
            (b'{"x":"' + b"a" * 70000 + b'"}', "too_large"),
            (b'{"event_id":"\xff"}', "invalid_utf8"),
            (b"{not json", "invalid_json"),
            (b"[1, 2]", "invalid_json"),
            (b'{"event_id":"e","amount":NaN}', "invalid_json"),
            (b'{"event_id":"\\ud800"}', "invalid_json"),
            (mk(event_id=KeyError), "missing_field"),
            (mk(deal_id=None), "missing_field"),
            (mk(event_id="", type="nope"), "invalid_field"),
            (mk(deal_id="x" * 129), "invalid_field"),
            (mk(type=7), "invalid_field"),
            (mk(occurred_at=1.5), "invalid_field"),
            (mk(occurred_at=True), "invalid_field"),
            (mk(occurred_at="2023-11-14T22:13:20"), "invalid_field"),
            (mk(type="nope", pipeline="zz"), "unknown_type"),
            (mk(pipeline=None), "unknown_pipeline"),   # default is not configured
            (mk(pipeline=3), "invalid_field"),
            (mk(stage=KeyError), "missing_field"),
            (mk(stage="zz"), "unknown_stage"),
            (mk(type="deal_won", stage="a"), "invalid_field"),
            (mk(type="deal_won", stage="zz"), "unknown_stage"),
            (mk(type="deal_lost", stage=42), "accepted"),   # stage ignored
            (mk(amount=-1), "invalid_field"),
            (mk(amount="5"), "invalid_field"),
            (mk(currency="US"), "invalid_field"),
            (mk(currency="us1"), "invalid_field"),
            (mk(owner="o" * 129), "invalid_field"),
            (mk(type="deal_lost", lost_reason=1), "invalid_field"),
            (mk(lost_reason=1), "accepted"),   # lost_reason is read on deal_lost only
            (mk(type="activity"), "missing_field"),
            (mk(type="activity", activity=""), "invalid_field"),
            (mk(type="activity", amount=-1), "missing_field"),   # the required field first
            (mk(type="activity", activity="a" * 65), "invalid_field"),
            (mk(activity="a" * 65), "accepted"),   # activity is read on activity events only
            (mk(occurred_at=NOW + 300_001), "future_timestamp"),
            (mk(occurred_at=NOW + 300_000), "accepted"),
            (mk(amount=0, currency="usd", owner="", extra={"x": 1}), "accepted"),
        ]
        for raw, want in cases:
            self.assertEqual(self.reason(raw), want, raw[:80])

    def test_v2_spend_and_feedback(self):
        """§7 order: event_id, deal_id (not read when type is the string
        "spend"), type, occurred_at -> unknown_type -> pipeline -> stage ->
        the fields a type requires (amount for spend; survey then score for
        feedback) -> the optional fields -> future_timestamp -> too_old."""
        spend = dict(event_id="s", type="spend", occurred_at=T, pipeline="p",
                     amount=10)
        fb = dict(event_id="f", deal_id="x", type="feedback", occurred_at=T,
                  pipeline="p", survey="csat", score=4)

        def mk(base, **changes):
            obj = dict(base)
            for k, v in changes.items():
                if v is KeyError:
                    obj.pop(k, None)
                else:
                    obj[k] = v
            return json.dumps(obj).encode()

        cases = [
            # spend: deal_id is neither required nor validated
            (mk(spend), "accepted"),                             # no deal_id at all
            (mk(spend, deal_id=7), "accepted"),                  # not a string: not read
            (mk(spend, deal_id=""), "accepted"),
            (mk(spend, deal_id="x" * 129), "accepted"),
            # deal_id is checked before type: only the string "spend" skips it
            (mk(spend, type=7), "missing_field"),                # no deal_id, type 7
            (mk(spend, type="Spend"), "missing_field"),          # not the string "spend"
            (mk(spend, type="nope"), "missing_field"),           # before unknown_type
            (mk(spend, deal_id=7, type=None), "invalid_field"),  # deal_id before type
            (mk(spend, deal_id="d", type=None), "missing_field"),  # then type
            (mk(spend, event_id=KeyError), "missing_field"),     # event_id before all
            (mk(spend, event_id=""), "invalid_field"),
            (mk(spend, occurred_at=KeyError), "missing_field"),
            (mk(spend, occurred_at=1.5, amount=KeyError), "invalid_field"),  # occurred_at first
            # amount is required on spend: missing when absent or null
            (mk(spend, amount=KeyError), "missing_field"),
            (mk(spend, amount=None), "missing_field"),
            (mk(spend, amount=-1), "invalid_field"),
            (mk(spend, amount="10"), "invalid_field"),
            (mk(spend, amount=True), "invalid_field"),
            (mk(spend, amount=0), "accepted"),
            (mk(spend, amount=0.5), "accepted"),
            # pipeline comes before the required field
            (mk(spend, amount=KeyError, pipeline="zz"), "unknown_pipeline"),
            (mk(spend, amount=KeyError, pipeline=3), "invalid_field"),
            # ... and the required field before the optional ones
            (mk(spend, amount=KeyError, currency="US"), "missing_field"),
            (mk(spend, currency="US"), "invalid_field"),         # optional still validated
            (mk(spend, source="s" * 129), "invalid_field"),
            (mk(spend, owner=5), "invalid_field"),
            # fields a spend does not use are ignored
            (mk(spend, stage="zz"), "accepted"),
            (mk(spend, lost_reason=1), "accepted"),
            (mk(spend, activity=""), "accepted"),
            (mk(spend, survey="x", score=4.0), "accepted"),
            # ... and the time checks come last
            (mk(spend, amount=KeyError, occurred_at=NOW + 300_001), "missing_field"),
            (mk(spend, occurred_at=NOW + 300_001), "future_timestamp"),
            (mk(spend, type="nope", amount=KeyError, deal_id="d"), "unknown_type"),

            # feedback: deal_id is required
            (mk(fb), "accepted"),
            (mk(fb, deal_id=KeyError), "missing_field"),
            (mk(fb, deal_id=7), "invalid_field"),
            # survey: missing when absent/null, else only "csat" or "nps"
            (mk(fb, survey=KeyError), "missing_field"),
            (mk(fb, survey=None), "missing_field"),
            (mk(fb, survey="CSAT"), "invalid_field"),
            (mk(fb, survey=1), "invalid_field"),
            (mk(fb, survey=KeyError, score="bad"), "missing_field"),   # survey before score
            (mk(fb, survey="bad", score=KeyError), "invalid_field"),   # survey before score
            # score: a JSON integer in the survey's range
            (mk(fb, score=KeyError), "missing_field"),
            (mk(fb, score=None), "missing_field"),
            (mk(fb, score=4.0), "invalid_field"),                # a float, even if whole
            (mk(fb, score=True), "invalid_field"),               # a boolean
            (mk(fb, score="4"), "invalid_field"),
            (mk(fb, score=0), "invalid_field"),                  # csat is 1..5
            (mk(fb, score=1), "accepted"),
            (mk(fb, score=5), "accepted"),
            (mk(fb, score=6), "invalid_field"),
            (mk(fb, survey="nps", score=0), "accepted"),         # nps is 0..10
            (mk(fb, survey="nps", score=10), "accepted"),
            (mk(fb, survey="nps", score=11), "invalid_field"),
            (mk(fb, survey="nps", score=-1), "invalid_field"),
            (b'{"event_id":"f","deal_id":"x","type":"feedback","occurred_at":1700000000000,'
             b'"pipeline":"p","survey":"nps","score":4e0}', "invalid_field"),   # float literal
            # pipeline before survey; survey/score before the optional fields
            (mk(fb, survey=KeyError, pipeline="zz"), "unknown_pipeline"),
            (mk(fb, score=KeyError, currency="US"), "missing_field"),
            (mk(fb, score=KeyError, amount=-1), "missing_field"),
            (mk(fb, amount=-1), "invalid_field"),                # attributes validated on feedback
            (mk(fb, team="t" * 129), "invalid_field"),
            # fields a feedback does not use are ignored
            (mk(fb, activity=""), "accepted"),
            (mk(fb, stage="zz"), "accepted"),
            (mk(fb, lost_reason=1), "accepted"),
            # survey/score are ignored on the other types
            (mk(fb, type="deal_updated", survey="x", score=4.0), "accepted"),
            (mk(fb, type="activity", activity="call", score=True), "accepted"),
            (mk(fb, type="deal_created", stage="a", survey=None, score=99), "accepted"),
        ]
        for raw, want in cases:
            self.assertEqual(self.reason(raw), want, raw[:160])

    def test_v2_json_shape_and_integer_time(self):
        ok = b'"deal_id":"x","type":"deal_updated","occurred_at":1700000000000,"pipeline":"p"'
        cases = [
            # §7 "JSON shape": a repeated key at any depth is invalid_json
            (b'{"event_id":"e","event_id":"f",' + ok + b'}', "invalid_json"),
            (b'{"event_id":"e",' + ok + b',"extra":{"a":1,"a":2}}', "invalid_json"),
            (b'{"event_id":"e",' + ok + b',"extra":[{"b":{"a":1,"a":1}}]}', "invalid_json"),
            # reading: keys compare after unescaping ("\u0061" is "a")
            (b'{"event_id":"e",' + ok + b',"extra":{"a":1,"\\u0061":2}}', "invalid_json"),
            (b'{"event_id":"e",' + ok + b',"extra":[{"a":1},{"a":2}]}', "accepted"),
            (b'"an event"', "invalid_json"),
            (b'17', "invalid_json"),
            (b'   ', "invalid_json"),   # a whitespace payload is invalid_json (files skip it)
        ]
        for raw, want in cases:
            self.assertEqual(self.reason(raw), want, raw)

        def at_ms(v):
            return json.dumps(dict(event_id="e", deal_id="x", type="deal_updated",
                                   occurred_at=v, pipeline="p")).encode()
        # integer occurred_at: -2^53 ... 2^53 ms, bounds included
        self.assertEqual(self.reason(at_ms(2 ** 53)), "future_timestamp")   # valid, far ahead
        self.assertEqual(self.reason(at_ms(2 ** 53 + 1)), "invalid_field")
        self.assertEqual(self.reason(at_ms(-(2 ** 53))), "accepted")    # empty store: not too_old
        self.assertEqual(self.reason(at_ms(-(2 ** 53) - 1)), "invalid_field")
        self.assertEqual(self.reason(at_ms("2023-11-14 22:13:20Z")), "invalid_field")
        self.assertEqual(self.reason(at_ms("2023-11-14t22:13:20z")), "accepted")

    def test_dedup_is_store_wide_across_types(self):
        store = fo.Store(cfg_p(), lambda: NOW)
        sp = json.dumps(dict(event_id="same", type="spend", occurred_at=T,
                             pipeline="p", amount=5)).encode()
        self.assertEqual(store.ingest(sp), "accepted")
        self.assertEqual(store.ingest(line("same", "x", "deal_created", T, stage="a")),
                         "duplicate")
        self.assertEqual(store.ingest(line("fb", "x", "feedback", T, survey="nps", score=3)),
                         "accepted")
        sp2 = json.dumps(dict(event_id="fb", type="spend", occurred_at=T,
                              pipeline="p", amount=5)).encode()
        self.assertEqual(store.ingest(sp2), "duplicate")
        self.assertEqual(store.summary(), {"accepted": 2, "duplicates": 2, "rejected": {}})
        # the first wins: one spend of 5, and deal x is made of the feedback only
        # (no stage: entries 0, never open).
        m = as_dict(fo.evaluate(store.cfg, store.events, T))
        self.assertEqual(m[key("crm_funnel_acquisition_spend", pipeline="p", window="1d",
                               currency="USD")], 5.0)
        self.assertEqual(m[key("crm_funnel_stage_entries", pipeline="p", window="1d",
                               funnel_stage="a")], 0)
        self.assertEqual(m[key("crm_funnel_open_deals", pipeline="p", funnel_stage="a")], 0)

    def test_too_old_and_id_reservation(self):
        store = fo.Store(cfg_p(), lambda: NOW)
        self.assertEqual(store.ingest(line("a", "x", "deal_created", T, stage="a")), "accepted")
        self.assertEqual(store.ingest(line("b", "x", "stage_changed", T - 30 * D, stage="b")),
                         "too_old")
        self.assertEqual(store.ingest(line("b", "x", "stage_changed", T - 30 * D + 1, stage="b")),
                         "accepted")   # the rejected "b" did not reserve its id
        self.assertEqual(store.ingest(line("b", "y", "deal_created", T, stage="a")), "duplicate")
        self.assertEqual(store.summary(), {"accepted": 2, "duplicates": 1,
                                           "rejected": {"too_old": 1}})


class CliTest(unittest.TestCase):
    def test_cli(self):
        here = os.path.dirname(os.path.abspath(__file__))
        with tempfile.TemporaryDirectory() as tmp:
            cfg_path = os.path.join(tmp, "c.toml")
            ev_path = os.path.join(tmp, "e.ndjson")
            with open(cfg_path, "w") as f:
                f.write(CONFIG_P)
            with open(ev_path, "wb") as f:
                # whitespace-only lines are skipped, not invalid_json (§7)
                f.write(b"\n".join(SCENARIO) + b"\n  \t \r\n\n{bad\n \n"
                        + spend_line("cli-s", T, 12.5, source="ads") + b"\r\n")
            res = subprocess.run([sys.executable, os.path.join(here, "funnel_oracle.py"),
                                  "--config", cfg_path, "--events", ev_path],
                                 capture_output=True, text=True, check=True)
        lines = res.stdout.splitlines()
        self.assertIn("crm_funnel_evaluation_timestamp_seconds 1700000000.0", lines)
        self.assertIn('crm_funnel_open_deals{funnel_stage="a",pipeline="p"} 2.0', lines)
        self.assertIn('crm_funnel_transition_duration_seconds_bucket{from_stage="a",'
                      'le="+Inf",pipeline="p",to_stage="b",window="7d"} 5.0', lines)
        # the default breakdowns add segment series; the spend (CRLF line) counts.
        # No SCENARIO deal carries a source, so "ads" is not ranked: the spend
        # falls in `other`. N(1d) = #{C in (9d,10d]} = d4, d6 = 2 -> 12.5 / 2.
        self.assertIn('crm_funnel_segment_acquisition_spend{currency="USD",dimension="source",'
                      'pipeline="p",segment="other",window="1d"} 12.5', lines)
        self.assertIn('crm_funnel_cost_per_lead{currency="USD",pipeline="p",window="1d"} 6.25',
                      lines)
        self.assertEqual(json.loads(res.stderr),
                         {"accepted": 27, "duplicates": 2,
                          "rejected": {"invalid_json": 1, "too_old": 1}})


if __name__ == "__main__":
    unittest.main()
