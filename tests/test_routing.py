"""The router's decisions, on pure data: capability match, local first, availability, balance, fallback."""

from domain.pool import ModelStatus, PoolSnapshot
from domain.registry import Capability, ModelSpec
from domain.routing import classify, route


def spec(model_id, caps=("general",), local=True, **kw) -> ModelSpec:
    provider = "scripted"
    return ModelSpec(id=model_id, provider=provider, local=local, capabilities=tuple(Capability(c) for c in caps), **kw)


def status(model_id, caps=("general",), local=True, loaded=True, **kw) -> ModelStatus:
    spec_kw = {k: kw.pop(k) for k in ("max_concurrency", "enabled", "disabled_reason") if k in kw}
    return ModelStatus(spec=spec(model_id, caps, local, **spec_kw), loaded=loaded, **kw)


def test_classifier_recognises_code_security_and_general_tasks():
    assert classify("Write a Python function that parses a CSV file").task_type == Capability.CODE
    assert classify("```js\nconst x = 1;\n```\nwhy does this fail?").task_type == Capability.CODE
    assert classify("Is this endpoint vulnerable to SQL injection?").task_type == Capability.SECURITY
    assert classify("Review the auth flow for security risks").task_type == Capability.SECURITY
    assert classify("What is the capital of France?").task_type == Capability.GENERAL
    assert classify("Tell me a story about a dragon").task_type == Capability.GENERAL
    # A passing mention is not enough for a specialist.
    assert classify("What does API stand for?").task_type == Capability.GENERAL


def test_classifier_uses_embedding_similarity_when_given():
    plain = classify("make the thing faster")
    assert plain.task_type == Capability.GENERAL
    helped = classify("make the thing faster", similarity={Capability.CODE: 0.9, Capability.SECURITY: 0.1})
    assert helped.task_type == Capability.CODE
    assert any("embedding similarity" in r for r in helped.reasons)


def test_routes_by_capability():
    pool = PoolSnapshot(models=[status("gen", ("general",)), status("coder", ("code",)),
                                status("sec", ("security",))])
    assert route(classify("Write a Python function to sort a list"), pool, "r1").chosen == "coder"
    assert route(classify("Find the XSS vulnerability here"), pool, "r1").chosen == "sec"
    assert route(classify("Hello there"), pool, "r1").chosen == "gen"


def test_missing_capability_falls_back_to_general_models():
    pool = PoolSnapshot(models=[status("gen", ("general",))])
    decision = route(classify("Write a Python function to sort a list"), pool, "r1")
    assert decision.chosen == "gen"
    assert any("falling back to general" in r for r in decision.reasons)


def test_prefers_local_over_cloud_even_when_cloud_is_idle():
    pool = PoolSnapshot(models=[status("cloud", local=False, max_concurrency=8),
                                status("local", in_flight=0, loaded=False)])
    decision = route(classify("hi"), pool, "r1")
    assert decision.candidates == ["local", "cloud"]
    assert "local" in decision.reasons[-1]


def test_unhealthy_disabled_and_cooling_models_are_skipped_with_reasons():
    pool = PoolSnapshot(models=[
        status("broken", healthy=False, health_detail="GGUF file not found: /x.gguf"),
        status("nokey", local=False, enabled=False, disabled_reason="set OPENAI_API_KEY to enable this cloud model"),
        status("cool", cooling_down=True, cooldown_remaining_s=20, last_error="boom"),
        status("ok"),
    ])
    decision = route(classify("hi"), pool, "r1")
    assert decision.chosen == "ok"
    assert decision.candidates == ["ok"]
    assert "GGUF file not found" in decision.skipped["broken"]
    assert "OPENAI_API_KEY" in decision.skipped["nokey"]
    assert "cooling down" in decision.skipped["cool"]


def test_loaded_preferred_over_cold_and_idle_over_busy():
    pool = PoolSnapshot(models=[status("cold", loaded=False), status("warm", loaded=True)])
    assert route(classify("hi"), pool, "r1").chosen == "warm"
    busy = PoolSnapshot(models=[status("a", in_flight=3, max_concurrency=4), status("b", in_flight=1, max_concurrency=4)])
    assert route(classify("hi"), busy, "r1").chosen == "b"
    # A saturated local model still beats nothing, but an unsaturated one goes first.
    full = PoolSnapshot(models=[status("full", in_flight=1, max_concurrency=1), status("free", loaded=False)])
    assert route(classify("hi"), full, "r1").chosen == "free"


def test_equal_candidates_are_balanced_across_requests_deterministically():
    pool = PoolSnapshot(models=[status("a"), status("b"), status("c")])
    chosen = [route(classify("hi"), pool, f"req-{i}").chosen for i in range(300)]
    counts = {m: chosen.count(m) for m in "abc"}
    assert all(70 <= n <= 130 for n in counts.values()), counts
    # Same request id, same decision: replay-safe.
    assert route(classify("hi"), pool, "req-7").chosen == route(classify("hi"), pool, "req-7").chosen


def test_fallback_excludes_failed_models_and_reports_when_none_left():
    pool = PoolSnapshot(models=[status("a"), status("b", local=False)])
    first = route(classify("hi"), pool, "r1")
    assert first.chosen == "a"
    second = route(classify("hi"), pool, "r1", excluded={"a": "crashed"})
    assert second.chosen == "b"
    assert "crashed" in second.skipped["a"]
    none = route(classify("hi"), pool, "r1", excluded={"a": "crashed", "b": "timeout"})
    assert none.chosen is None and none.candidates == []


def test_forced_model_is_used_or_explained():
    pool = PoolSnapshot(models=[status("a"), status("b", healthy=False, health_detail="missing file")])
    assert route(classify("hi"), pool, "r1", forced_model="a").chosen == "a"
    broken = route(classify("hi"), pool, "r1", forced_model="b")
    assert broken.chosen is None and broken.skipped == {"b": "missing file"}
    unknown = route(classify("hi"), pool, "r1", forced_model="zzz")
    assert unknown.skipped == {"zzz": "not in the registry"}


def test_placement_pins_a_call_to_the_worker_whose_pool_differs():
    general = classify("hello")
    warm_a = status("m", task_queue="q/pool/a", loaded=True)
    cold_b = status("m", task_queue="q/pool/b", loaded=False)
    decision = route(general, PoolSnapshot(models=[cold_b, warm_a]), "r1")
    assert (decision.chosen, decision.placement) == ("m", "q/pool/a")
    assert any("on q/pool/a" in r for r in decision.reasons)
    # Cooling down on a: b's copy serves, pinned there (the shared queue could hand it to a).
    cooling_a = status("m", task_queue="q/pool/a", cooling_down=True, cooldown_remaining_s=30, last_error="boom")
    decision = route(general, PoolSnapshot(models=[cooling_a, cold_b]), "r1")
    assert (decision.chosen, decision.placement) == ("m", "q/pool/b")
    # Every worker alike (both loaded): any worker may take it.
    warm_b = status("m", task_queue="q/pool/b", loaded=True)
    assert route(general, PoolSnapshot(models=[warm_a, warm_b]), "r1").placement is None
    # Cooling down everywhere: skipped, with each worker's reason.
    cooling_b = cooling_a.model_copy(update={"task_queue": "q/pool/b"})
    decision = route(general, PoolSnapshot(models=[cooling_a, cooling_b]), "r1")
    assert decision.chosen is None and "cooling down" in decision.skipped["m"]
