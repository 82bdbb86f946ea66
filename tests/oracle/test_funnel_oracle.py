"""Hand-checked tests of the oracle (funnel_oracle.py) against docs/metrics.md.

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
        self.assertEqual(p("2023-11-14 17:13:20.5-05:00"), T + 500)
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
                f.write(b"\n".join(SCENARIO) + b"\n{bad\n")
            res = subprocess.run([sys.executable, os.path.join(here, "funnel_oracle.py"),
                                  "--config", cfg_path, "--events", ev_path],
                                 capture_output=True, text=True, check=True)
        lines = res.stdout.splitlines()
        self.assertIn("crm_funnel_evaluation_timestamp_seconds 1700000000.0", lines)
        self.assertIn('crm_funnel_open_deals{funnel_stage="a",pipeline="p"} 2.0', lines)
        self.assertIn('crm_funnel_transition_duration_seconds_bucket{from_stage="a",'
                      'le="+Inf",pipeline="p",to_stage="b",window="7d"} 5.0', lines)
        self.assertEqual(json.loads(res.stderr),
                         {"accepted": 26, "duplicates": 2,
                          "rejected": {"invalid_json": 1, "too_old": 1}})


if __name__ == "__main__":
    unittest.main()
