"""Settings → Models in a real browser, against the real `synapse serve` and the fake providers.

One `synapse serve` subprocess for the module, its data folder in a temp dir; the
provider base-URL overrides that are not card fields (anthropic_base_url, ...) are
written to settings.json before it starts, so each card talks to its fake server.
For each card: a bad key turns the dot red with the reason, a good key turns it green
and the provider's models appear in the selector without a reload.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.browser.helpers import ApiClient, ServeProcess

KEYS = {
    "anthropic": "sk-ant-api03-browserGOODkey0000000000000001AAAA",
    "openai": "sk-proj-browserGOODopenai00000000000002BBBB",
    "gemini": "AIzaSyBrowserGOODgemini000000000003CCCC",
    "xai": "xai-browserGOODgrok0000000000000004DDDD",
    "deepseek": "sk-browserGOODdeepseek0000000005EEEE",
    "bedrock": "ABSKbrowserGOODbedrock00000000000006FFFF",
    "oaic": "tgp_v1_browserGOODtogether0000007GGGG",
}
WRONG = {
    "anthropic": "sk-ant-api03-browserWRONGkey00000000000000WR01",
    "openai": "sk-proj-browserWRONGopenai0000000000000WR02",
    "gemini": "AIzaSyBrowserWRONGgemini0000000000WR03",
    "xai": "xai-browserWRONGgrok000000000000000WR04",
    "deepseek": "sk-browserWRONGdeepseek000000000WR05",
    "bedrock": "ABSKbrowserWRONGbedrock0000000000000WR06",
    "oaic": "tgp_v1_browserWRONGtogether00000WR07",
}
ALL_SECRETS = [*KEYS.values(), *WRONG.values()]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Case:
    id: str
    label: str
    make: Callable[[], Any]
    #: settings.json entries that point Synapse at the fake (not card fields)
    overrides: Callable[[Any], dict[str, str]]
    good: Callable[[Any], dict[str, str]]
    bad: Callable[[Any], dict[str, str]]
    bad_reason: str  # regex for the red status text
    fake: Any = field(default=None)


def _cases() -> list[Case]:
    cases: list[Case] = []

    def have(module: str) -> bool:
        return (Path(__file__).resolve().parents[1] / "fakes" / f"{module}.py").exists()

    if have("anthropic"):
        from tests.fakes.anthropic import AnthropicFake

        cases.append(Case(
            "anthropic", "Anthropic Claude", lambda: AnthropicFake(valid_keys={KEYS["anthropic"]}),
            lambda f: {"anthropic_base_url": f.url},
            lambda f: {"anthropic_key": KEYS["anthropic"]}, lambda f: {"anthropic_key": WRONG["anthropic"]},
            "Invalid key"))
    if have("openai"):
        from tests.fakes.openai import OpenAIFake

        cases.append(Case(
            "openai", "OpenAI", lambda: OpenAIFake(valid_keys={KEYS["openai"]}, flavour="openai"),
            lambda f: {"openai_base_url": f.base_url},
            lambda f: {"openai_key": KEYS["openai"]}, lambda f: {"openai_key": WRONG["openai"]}, "Invalid key"))
    if have("gemini"):
        from tests.fakes.gemini import GeminiFake

        cases.append(Case(
            "gemini", "Google Gemini", lambda: GeminiFake(valid_keys={KEYS["gemini"]}),
            lambda f: {"gemini_base_url": f.url},
            lambda f: {"gemini_key": KEYS["gemini"]}, lambda f: {"gemini_key": WRONG["gemini"]}, "Invalid key"))
    if have("openai"):
        from tests.fakes.openai import OpenAIFake

        cases.append(Case(
            "xai", "xAI Grok", lambda: OpenAIFake(valid_keys={KEYS["xai"]}, flavour="xai"),
            lambda f: {"grok_base_url": f.base_url},
            lambda f: {"grok_key": KEYS["xai"]}, lambda f: {"grok_key": WRONG["xai"]}, "Invalid key"))
        cases.append(Case(
            "deepseek", "DeepSeek", lambda: OpenAIFake(valid_keys={KEYS["deepseek"]}, flavour="deepseek"),
            lambda f: {"deepseek_base_url": f.base_url},
            lambda f: {"deepseek_key": KEYS["deepseek"]}, lambda f: {"deepseek_key": WRONG["deepseek"]},
            "Invalid key"))
    if have("bedrock"):
        from tests.fakes.bedrock import BedrockFake

        cases.append(Case(
            "bedrock", "AWS Bedrock", lambda: BedrockFake(valid_keys={KEYS["bedrock"]}, region="eu-central-1"),
            lambda f: {"bedrock_runtime_url": f.url, "bedrock_control_url": f.url},
            lambda f: {"bedrock_api_key": KEYS["bedrock"], "aws_region": f.region},
            lambda f: {"bedrock_api_key": WRONG["bedrock"], "aws_region": f.region},
            r"Invalid key|No access"))
    if have("openai"):
        from tests.fakes.openai import OpenAIFake

        cases.append(Case(
            "oaic", "OpenAI Compatible", lambda: OpenAIFake(valid_keys={KEYS["oaic"]}, flavour="together"),
            lambda f: {},
            lambda f: {"openai_compatible_key": KEYS["oaic"], "openai_compatible_base_url": f.base_url},
            lambda f: {"openai_compatible_key": WRONG["oaic"], "openai_compatible_base_url": f.base_url},
            "Invalid key"))
    if have("ollama"):
        from tests.fakes.ollama import OllamaFake

        cases.append(Case(
            "ollama", "Ollama (Local)", lambda: OllamaFake(), lambda f: {},
            lambda f: {"ollama_base_url": f.url},
            lambda f: {"ollama_base_url": f"http://127.0.0.1:{closed_port()}"}, "Cannot reach the base URL"))
    if have("openai"):
        from tests.fakes.openai import OpenAIFake

        cases.append(Case(
            "locv1", "Local V1 Compatible", lambda: OpenAIFake(flavour="local", models=["qwen2.5-7b-instruct", "phi-4"]),
            lambda f: {},
            lambda f: {"local_compatible_base_url": f.base_url},
            lambda f: {"local_compatible_base_url": f"http://127.0.0.1:{closed_port()}/v1"}, "Cannot reach the base URL"))
    return cases


CASES = _cases()
EXPECTED_CARDS = ["anthropic", "openai", "gemini", "xai", "deepseek", "bedrock", "oaic", "ollama", "locv1"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from tests.browser.conftest import _require_browser

    _require_browser()
    root = tmp_path_factory.mktemp("browser")
    data = root / "data"
    data.mkdir()
    started = []
    overrides: dict[str, Any] = {}
    try:
        for case in CASES:
            case.fake = case.make().start()
            started.append(case.fake)
            overrides.update(case.overrides(case.fake))
        (data / "settings.json").write_text(json.dumps(overrides, indent=2))
        server = ServeProcess(data, log_path=root / "serve.log").start()
        try:
            yield {"server": server, "data": data, "cases": {c.id: c for c in CASES}}
        finally:
            server.stop()
    finally:
        for fake in started:
            fake.stop()


def card(page: Any, provider: str) -> Any:
    return page.locator(f"#card-{provider}")


def fill_card(page: Any, provider: str, values: dict[str, str]) -> None:
    c = card(page, provider)
    for setting, value in values.items():
        c.locator(f'[data-setting="{setting}"]').fill(value)


def expect_state(page: Any, provider: str, state: str, timeout: float = 20_000) -> None:
    page.wait_for_selector(f'#card-{provider} .dot[data-state="{state}"]', timeout=timeout)


def selector_ids(page: Any, label: str) -> list[str]:
    return page.eval_on_selector_all(
        f'#default-model optgroup[label="{label}"] option', "els => els.map(e => e.value)")


def test_startup_prints_the_url(world: dict[str, Any]) -> None:
    server: ServeProcess = world["server"]  # start-up time: bench/bench_serve.py
    assert f"Synapse is running at http://127.0.0.1:{server.port}/settings/models" in server.output()


def test_every_card_is_shown(world: dict[str, Any], page: Any, screenshots: Path) -> None:
    page.goto(world["server"].url + "/settings/models")
    page.wait_for_selector("#card-hf")
    ids = page.eval_on_selector_all(".card", "els => els.map(e => e.dataset.provider)")
    assert ids == [*EXPECTED_CARDS, "hf"]
    assert page.locator("#selector-empty").is_visible()
    assert card(page, "anthropic").locator(".card-meta").inner_text().startswith("Key format sk-ant-…")
    assert card(page, "anthropic").get_by_role("link", name="Anthropic Console ↗").get_attribute("href") == \
        "https://console.anthropic.com/settings/keys"
    assert card(page, "bedrock").get_by_label("AWS Region").input_value() == "us-east-1"  # the default
    # every cloud card has its base-URL override under Advanced; open here, since each points at a fake
    overrides = json.loads((world["data"] / "settings.json").read_text())
    for provider, setting in [("anthropic", "anthropic_base_url"), ("openai", "openai_base_url"),
                              ("gemini", "gemini_base_url"), ("xai", "grok_base_url"),
                              ("deepseek", "deepseek_base_url"), ("bedrock", "bedrock_runtime_url")]:
        advanced = card(page, provider).locator("details.advanced")
        assert advanced.get_attribute("open") is not None, provider
        assert advanced.locator("summary").inner_text() == "Advanced · custom endpoint"
        assert advanced.locator(f'[data-setting="{setting}"]').input_value() == overrides[setting]
    for provider in ("oaic", "ollama", "locv1"):  # their base URL is a main field
        assert card(page, provider).locator("details.advanced").count() == 0
    labels = card(page, "locv1").locator("label").all_inner_texts()
    assert "API Key (optional)" in labels and not any("(optional) (optional)" in x for x in labels)
    page.screenshot(path=str(screenshots / "models-empty-1280.png"), full_page=True)
    card(page, "openai").screenshot(path=str(screenshots / "card-openai-advanced.png"))


def test_every_card_with_a_fake_is_covered() -> None:
    assert [c.id for c in CASES] == EXPECTED_CARDS, "a fake provider server is missing"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_then_good_key(world: dict[str, Any], page: Any, case: Case, screenshots: Path) -> None:
    page.goto(world["server"].url + "/settings/models")
    c = card(page, case.id)
    c.wait_for()
    # Bad key (or unreachable base URL), submitted with Enter from the keyboard.
    fill_card(page, case.id, case.bad(case.fake))
    c.locator("[data-setting]").first.press("Enter")
    expect_state(page, case.id, "error")
    status = c.locator(".status-text").inner_text()
    assert re.fullmatch(case.bad_reason, status), status
    detail = c.locator(".status-detail").inner_text()
    assert detail and detail != status
    assert case.label.split()[0] in detail or "reach" in detail or "127.0.0.1" in detail, detail
    # the form never says "Saved." next to a red status
    assert c.locator(".form-msg").inner_text() == "Not connected: fix what the status above says, then Save again."
    if status == "Invalid key":
        assert c.locator('[data-kind="secret"]').first.get_attribute("aria-invalid") == "true"
    if case.id == "anthropic":
        c.screenshot(path=str(screenshots / "card-anthropic-bad-key.png"))
    # Good key: green, model count, models in the selector without a reload.
    fill_card(page, case.id, case.good(case.fake))
    c.get_by_role("button", name="Save").click()
    expect_state(page, case.id, "ok")
    page.wait_for_function("id => document.querySelector(`#card-${id} .form-msg`).textContent === 'Saved.'", arg=case.id)
    assert c.locator('[aria-invalid="true"]').count() == 0
    text = c.locator(".status-text").inner_text()
    m = re.fullmatch(r"Connected · (\d+) models?", text)
    assert m and int(m.group(1)) > 0, text
    page.wait_for_function(
        "label => document.querySelectorAll(`#default-model optgroup[label=\"${label}\"] option`).length > 0",
        arg=case.label)
    api = ApiClient(world["server"].url)
    groups = {g["provider"]: g["models"] for g in api.get("/api/models").json()["groups"]}
    assert selector_ids(page, case.label) == [x["id"] for x in groups[case.id] if not x["embedding"]]
    assert int(m.group(1)) == len(groups[case.id])
    assert page.locator("#selector-body").is_visible()
    # The saved key is shown masked, never in the page.
    html = page.content()
    for secret in ALL_SECRETS:
        assert secret not in html
    secret_fields = c.locator('input[type="password"]')
    for i in range(secret_fields.count()):
        assert secret_fields.nth(i).input_value() == ""
    if case.id in KEYS:
        assert c.locator(".saved-note").first.inner_text().startswith("Saved: ")
        assert KEYS[case.id][-4:] in c.locator(".saved-note").first.inner_text()
    # The request went to the fake with the good key.
    assert case.fake.requests, "the fake was never called"


def test_wire_auth_headers_reached_the_fakes(world: dict[str, Any]) -> None:
    cases = world["cases"]
    if "anthropic" in cases:
        assert any(r.headers.get("x-api-key") == KEYS["anthropic"] for r in cases["anthropic"].fake.requests)
    if "openai" in cases:
        assert any(r.headers.get("Authorization") == f"Bearer {KEYS['openai']}" for r in cases["openai"].fake.requests)
    if "gemini" in cases:
        assert any(r.headers.get("x-goog-api-key") == KEYS["gemini"] or r.query.get("key") == KEYS["gemini"]
                   for r in cases["gemini"].fake.requests)
    if "bedrock" in cases:
        assert any(r.headers.get("Authorization") == f"Bearer {KEYS['bedrock']}" for r in cases["bedrock"].fake.requests)


def test_bedrock_inference_profile_dropdown(world: dict[str, Any], page: Any) -> None:
    if "bedrock" not in world["cases"]:
        pytest.skip("no Bedrock fake")
    page.goto(world["server"].url + "/settings/models")
    expect_state(page, "bedrock", "ok")
    select = card(page, "bedrock").get_by_label("Inference Profile (optional)", exact=True)
    page.wait_for_function("() => document.querySelectorAll('#bedrock--bedrock_inference_profile option').length > 2")
    options = select.locator("option")
    assert options.first.text_content() == "none — direct invocation"
    values = [v for v in options.evaluate_all("els => els.map(e => e.value)") if v not in ("", "__other__")]
    assert values, "no inference profiles from ListInferenceProfiles"
    select.select_option(values[0])
    with page.expect_response(lambda r: r.request.method == "PUT" and r.url.endswith("/api/providers/bedrock")):
        card(page, "bedrock").get_by_role("button", name="Save").click()
    page.wait_for_function("() => document.querySelector('#card-bedrock .form-msg').textContent === 'Saved.'")
    expect_state(page, "bedrock", "ok")
    saved = json.loads((world["data"] / "settings.json").read_text())
    assert saved["bedrock_inference_profile"] == values[0]
    # a typed id or ARN is accepted too
    select.select_option("__other__")
    other = card(page, "bedrock").get_by_label("Inference Profile id or ARN")
    other.fill("arn:aws:bedrock:eu-central-1:123456789012:application-inference-profile/abc123")
    with page.expect_response(lambda r: r.request.method == "PUT" and r.url.endswith("/api/providers/bedrock")):
        other.press("Enter")
    page.wait_for_function(
        "() => document.querySelector('#card-bedrock .form-msg').textContent === 'Saved.'")
    saved = json.loads((world["data"] / "settings.json").read_text())
    assert saved["bedrock_inference_profile"].endswith("application-inference-profile/abc123")
    page.reload()
    expect_state(page, "bedrock", "ok")
    assert card(page, "bedrock").get_by_label("Inference Profile id or ARN").input_value().endswith("/abc123")


def test_pick_default_model_survives_reload(world: dict[str, Any], page: Any, screenshots: Path) -> None:
    page.goto(world["server"].url + "/settings/models")
    page.wait_for_selector("#selector-body:not([hidden])")
    values = page.eval_on_selector_all("#default-model option", "els => els.map(e => e.value).filter(Boolean)")
    assert len(values) >= 3
    choice = next((v for v in values if v.startswith("claude-")), values[0])
    page.locator("#default-model").select_option(choice)
    page.wait_for_function("() => document.querySelector('#model-note').textContent.startsWith('Saved.')")
    assert json.loads((world["data"] / "settings.json").read_text())["model"] == choice
    page.reload()
    page.wait_for_selector("#selector-body:not([hidden])")
    page.wait_for_function("v => document.querySelector('#default-model').value === v", arg=choice)
    page.screenshot(path=str(screenshots / "models-connected-1280.png"), full_page=True)


def test_remove_provider(world: dict[str, Any], page: Any, screenshots: Path) -> None:
    if "deepseek" not in world["cases"]:
        pytest.skip("no DeepSeek fake")
    api = ApiClient(world["server"].url)
    before = api.get("/api/settings/model").json()["model"]
    assert api.put("/api/settings/model", {"model": "deepseek-chat"}).status == 200
    page.goto(world["server"].url + "/settings/models")
    expect_state(page, "deepseek", "ok")
    key = card(page, "deepseek").locator('[data-setting="deepseek_key"]')
    assert key.get_attribute("placeholder") == "Saved — paste a new key to replace it"
    remove = card(page, "deepseek").get_by_role("button", name="Remove")
    remove.click()
    card(page, "deepseek").get_by_role("button", name="Confirm remove").click()
    expect_state(page, "deepseek", "not_configured")
    page.wait_for_function("() => !document.querySelector('#default-model optgroup[label=\"DeepSeek\"]')")
    saved = json.loads((world["data"] / "settings.json").read_text())
    assert "deepseek_key" not in saved and "deepseek_base_url" not in saved  # the Advanced override too
    # the card is as new: no "Saved" hint, no stale note, an empty Advanced section
    assert key.get_attribute("placeholder") == "sk-…"
    assert card(page, "deepseek").locator(".saved-note").inner_text() == ""
    assert card(page, "deepseek").locator(".form-msg").inner_text() == "Removed."
    assert card(page, "deepseek").locator("details.advanced summary").inner_text() == "Advanced"
    assert card(page, "deepseek").locator('[data-setting="deepseek_base_url"]').input_value() == ""
    # the default model was DeepSeek's: it stays chosen, with a warning that says what to do
    note = page.locator("#model-note")
    page.wait_for_function("() => document.querySelector('#model-note').classList.contains('warn')")
    assert note.inner_text() == ("deepseek-chat needs DeepSeek, which is not connected: "
                                 "fill in the DeepSeek card on Settings → Models and Save first")
    assert page.locator("#default-model").input_value() == "deepseek-chat"
    assert page.locator("#default-model").get_attribute("aria-invalid") is not None
    page.locator(".selector").screenshot(path=str(screenshots / "models-default-model-warning.png"))
    card(page, "deepseek").screenshot(path=str(screenshots / "card-deepseek-removed.png"))
    # picking a model of a connected provider clears the warning
    choice = next(v for v in page.eval_on_selector_all("#default-model option", "els => els.map(e => e.value)")
                  if v.startswith("claude-"))
    page.locator("#default-model").select_option(choice)
    page.wait_for_function("() => document.querySelector('#model-note').textContent.startsWith('Saved.')")
    assert "warn" not in (note.get_attribute("class") or "")
    if before:
        api.put("/api/settings/model", {"model": before})


def test_advanced_base_url_is_checked_and_saved(world: dict[str, Any], page: Any) -> None:
    page.goto(world["server"].url + "/settings/models")
    expect_state(page, "anthropic", "ok")
    c = card(page, "anthropic")
    url = c.locator('[data-setting="anthropic_base_url"]')
    good = url.input_value()
    url.fill("ftp://proxy.example")
    c.get_by_role("button", name="Save").click()
    page.wait_for_function("() => document.querySelector('#card-anthropic .form-msg').classList.contains('error-text')")
    assert c.locator(".form-msg").inner_text() == "Base URL must be an http:// or https:// URL, like https://api.anthropic.com"
    assert url.get_attribute("aria-invalid") == "true"
    assert json.loads((world["data"] / "settings.json").read_text())["anthropic_base_url"] == good
    url.fill(good + "/")
    c.get_by_role("button", name="Save").click()
    page.wait_for_function("() => document.querySelector('#card-anthropic .form-msg').textContent === 'Saved.'")
    assert json.loads((world["data"] / "settings.json").read_text())["anthropic_base_url"] == good
    expect_state(page, "anthropic", "ok")


def test_no_key_in_api_responses_or_server_log(world: dict[str, Any]) -> None:
    api = ApiClient(world["server"].url)
    for path in ("/api/providers", "/api/models", "/api/settings", "/api/settings/model", "/settings/models",
                 "/api/providers/bedrock/inference-profiles"):
        body = api.get(path).text
        for secret in ALL_SECRETS:
            assert secret not in body, (path, secret)
    time.sleep(0.2)
    log = world["server"].output()
    assert '"PUT /api/providers/anthropic HTTP/1.1" 200' in log  # the access log is on...
    for secret in ALL_SECRETS:
        assert secret not in log  # ...and never holds a key
    for secret in KEYS.values():  # the keys are in settings.json, nowhere else
        assert secret in (world["data"] / "settings.json").read_text() or secret == KEYS["deepseek"]


def test_phone_width(world: dict[str, Any], page: Any, screenshots: Path) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(world["server"].url + "/settings/models")
    page.wait_for_selector("#selector-body:not([hidden])")
    expect_state(page, "anthropic", "ok")
    # nothing wider than the screen
    overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a phone screen"
    box = card(page, "bedrock").bounding_box()
    assert box and box["width"] <= 390
    page.screenshot(path=str(screenshots / "models-phone-390.png"), full_page=True)
    page.screenshot(path=str(screenshots / "models-phone-390-top.png"))


def test_keyboard_focus_order(world: dict[str, Any], page: Any) -> None:
    page.goto(world["server"].url + "/settings/models")
    expect_state(page, "anthropic", "ok")
    page.locator("#anthropic--anthropic_key").focus()
    page.keyboard.press("Tab")  # the Advanced disclosure (open: the base URL points at the fake)
    assert page.evaluate("() => document.activeElement.tagName") == "SUMMARY"
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "anthropic--anthropic_base_url"
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Save"
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "Check again"
    fake = world["cases"]["anthropic"].fake
    before = len(fake.requests)
    page.keyboard.press("Enter")  # Check again, from the keyboard
    deadline = time.monotonic() + 10
    while len(fake.requests) == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(fake.requests) > before, "Check again did not reach the provider"
    expect_state(page, "anthropic", "ok")


def test_hugging_face_card_shows_what_is_installed(world: dict[str, Any], page: Any, screenshots: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install requirements-hf.lock: transformers and torch are missing")
        pytest.skip("transformers and torch are not installed here")
    import torch
    import transformers

    page.goto(world["server"].url + "/settings/models")
    hf = card(page, "hf")
    hf.get_by_role("button", name="Check").click()
    expect_state(page, "hf", "ok", timeout=60_000)
    detail = hf.locator(".status-detail").inner_text()
    assert hf.locator(".status-text").inner_text() == "Ready · 0 loaded"
    assert detail.startswith(f"transformers {transformers.__version__} and torch {torch.__version__} installed; "
                             "models run on cpu; no model loaded yet")
    hf.scroll_into_view_if_needed()
    hf.screenshot(path=str(screenshots / "models-hf-card.png"))
