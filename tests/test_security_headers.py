"""Security headers on every kind of answer (admin, API, API docs), and templates that work
under the Content-Security-Policy: no inline event handlers or style attributes, and every inline
<script> and <style> carries the request's nonce. (The browser tests fail on any CSP report too.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

from tests.helpers import api_client_for, login

ROOT = Path(__file__).resolve().parents[1]
APPS = ["loyalty", "promotions", "redemptions", "retro", "config"]


def csp(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def assert_secure_headers(response):
    policy = csp(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"][0] == "'self'" and "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"] and "'unsafe-inline'" not in policy["style-src"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["object-src"] == ["'none'"]
    assert policy["form-action"] == ["'self'"] and policy["base-uri"] == ["'self'"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"]


@pytest.mark.django_db
def test_admin_api_and_docs_answers_carry_the_security_headers(auditor_user, integration_user):
    page = Client().get("/admin/login/")
    assert page.status_code == 200
    assert_secure_headers(page)
    assert_secure_headers(api_client_for(integration_user).get("/api/v1/members/"))
    assert_secure_headers(Client().get("/api/v1/members/"))  # a 401 too
    docs = login(auditor_user).get("/api/docs/")
    assert docs.status_code == 200
    assert_secure_headers(docs)
    nonce = next(s for s in csp(docs)["style-src"] if s.startswith("'nonce-"))[7:-1]
    html = docs.content.decode()
    assert f'<style nonce="{nonce}">' in html
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html  # self-hosted
    assert "cdn" not in html and "<script>" not in html
    script = login(auditor_user).get("/api/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    again = login(auditor_user).get("/api/docs/")
    assert csp(again)["style-src"] != csp(docs)["style-src"]  # a new nonce for every answer


@pytest.mark.django_db
def test_the_sign_in_lockout_page_carries_the_headers_too(support_user):
    client = Client()
    for _ in range(6):
        client.post("/admin/login/?next=/admin/", {"username": "sally", "password": "nope"})
    locked = client.post("/admin/login/?next=/admin/", {"username": "sally", "password": "pw-sally"})
    assert locked.status_code == 429
    assert_secure_headers(locked)


INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
STYLE_ATTRIBUTE = re.compile(r"\sstyle\s*=", re.IGNORECASE)


def test_templates_work_under_the_policy():
    problems = []
    for path in sorted((ROOT / "templates").rglob("*.html")):
        text = path.read_text()
        name = path.relative_to(ROOT)
        for tag in re.findall(r"<(?:script|style)\b[^>]*>", text):
            if tag.startswith("<script") and "src=" in tag:
                continue
            if 'type="application/json"' in tag or "nonce=" in tag:
                continue
            problems.append(f"{name}: {tag} without the nonce")
        if INLINE_HANDLER.search(text):
            problems.append(f"{name}: an inline event handler (use data-confirm or a static script)")
        if STYLE_ATTRIBUTE.search(text):
            problems.append(f"{name}: a style attribute (use a class)")
    assert problems == []


def test_python_made_html_has_no_style_attributes_or_inline_scripts():
    problems = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if re.search(r"""["']style["']\s*:|\sstyle=|<script>|\son(click|change|submit)=""", line):
                    problems.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert problems == []
