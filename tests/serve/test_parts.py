"""The small parts of the server on their own: the Prometheus text, the frame rate cap, the
exposure rule and model names."""
from __future__ import annotations

import pytest

from vidcls.serve.metrics import Registry
from vidcls.serve.models import ServedModel, model_name_for
from vidcls.serve.server import check_exposure, is_loopback
from vidcls.serve.state import ServeConfig
from vidcls.serve.streaming import RateCap


def test_prometheus_text_of_each_kind():
    reg = Registry()
    c = reg.counter("x_total", "things", ("kind",))
    g = reg.gauge("depth", "waiting")
    h = reg.histogram("latency_seconds", "time", ("route",), buckets=(0.1, 1.0))
    c.inc(kind='a "quoted"\nname')
    c.inc(2, kind="b")
    g.set(3)
    g.dec()
    for v in (0.05, 0.5, 5.0):
        h.observe(v, route="/p")
    assert reg.render() == "\n".join([
        "# HELP x_total things", "# TYPE x_total counter",
        'x_total{kind="a \\"quoted\\"\\nname"} 1', 'x_total{kind="b"} 2',
        "# HELP depth waiting", "# TYPE depth gauge", "depth 2",
        "# HELP latency_seconds time", "# TYPE latency_seconds histogram",
        'latency_seconds_bucket{route="/p",le="0.1"} 1',
        'latency_seconds_bucket{route="/p",le="1"} 2',
        'latency_seconds_bucket{route="/p",le="+Inf"} 3',
        'latency_seconds_sum{route="/p"} 5.55', 'latency_seconds_count{route="/p"} 3']) + "\n"
    with pytest.raises(ValueError, match="takes labels"):
        c.inc(other="x")
    with pytest.raises(ValueError, match="registered twice"):
        reg.gauge("depth", "again")


def test_rate_cap_counts_a_sliding_second():
    now = [0.0]
    cap = RateCap(3, clock=lambda: now[0])
    assert [cap.allow() for _ in range(4)] == [True, True, True, False]
    now[0] = 0.5
    assert cap.allow() is False
    now[0] = 1.0  # the first three left the window
    assert [cap.allow() for _ in range(4)] == [True, True, True, False]


@pytest.mark.parametrize("host, local", [("127.0.0.1", True), ("127.0.0.2", True),
                                         ("localhost", True), ("::1", True),
                                         ("0.0.0.0", False), ("::", False),
                                         ("192.168.1.5", False), ("example.org", False)])
def test_only_loopback_may_go_without_a_token(host, local):
    assert is_loopback(host) is local
    if local:
        check_exposure(host, token=None)
    else:
        with pytest.raises(ValueError, match=f"refusing to listen on {host} without a token"):
            check_exposure(host, token=None)
        check_exposure(host, token="secret")
        check_exposure(host, token=None, insecure=True)


def test_config_and_names_are_checked(tmp_path):
    with pytest.raises(ValueError, match="max_batch must be > 0"):
        ServeConfig(max_batch=0)
    with pytest.raises(ValueError, match="token is empty"):
        ServeConfig(token="")
    assert model_name_for(tmp_path / "runs" / "tsm" / "checkpoints" / "best") == "tsm"
    assert model_name_for(tmp_path / "my_ckpt") == "my_ckpt"


def test_a_model_name_must_fit_in_a_url(models):
    with pytest.raises(ValueError, match="not usable in a URL"):
        ServedModel("a b/c", models[0].predictor)
