"""The workshop hub in a real browser (issue 27): a learner opens the hub's login page in headless Chromium, chooses
their password at this first login, lands in their own JupyterLab, and runs a chapter's widget cell — Chapter 11's
pipeline-schedule explorer, with the smoke profile the roster gives them — which renders as a live explorer. The
hub is tests/test_hub_live.py's (loopback, a temporary folder, throwaway system users removed afterwards); the
browser helpers are tests/test_browser.py's. Runs in `make test-browser`.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

import pytest
import requests
import test_browser
from test_browser import ARTIFACTS, VIEWPORT, run_all
from test_hub_live import CAN_CREATE_USERS, START_TIMEOUT_S, hub_log, running_room

pytestmark = pytest.mark.browser
browser = test_browser.browser          # the course's headless Chromium fixture

CHAPTER = Path(__file__).resolve().parents[1] / "chapters" / "11_speed_and_scale.py"


def explorer_cell() -> str:
    """The chapter's cell that builds its pipeline-schedule explorer (jupytext percent cells), with the imports
    the chapter made earlier."""
    cells = re.split(r"^# %%.*$", CHAPTER.read_text(encoding="utf-8"), flags=re.M)
    (cell,) = [cell for cell in cells if "Explorer(parallel.schedule_figure" in cell]
    return "from utils import parallel\nfrom utils.plotting import show\n" + cell.strip()


def test_a_learner_signs_in_on_the_login_page_and_an_explorer_renders(browser):
    if not CAN_CREATE_USERS:
        pytest.skip("the learner's server runs as their own system user, and this test cannot create users here")
    # the culler left at an hour: the browser's clicks do not reach the hub's activity record within the test
    with running_room(3600, ("--LabApp.expose_app_in_browser=True",)) as room:
        if room.no_servers_because:
            pytest.skip(room.no_servers_because)
        learner, password = room.learners[0], secrets.token_urlsafe(12)
        page = browser.new_page(viewport=VIEWPORT)
        try:
            page.goto(f"{room.url}/hub/login", wait_until="domcontentloaded")
            page.fill("#username_input", learner)
            page.fill("#password_input", password)
            page.click("#login_submit")                  # the first login: this password becomes theirs
            page.wait_for_url(re.compile(rf"/user/{learner}/lab"), timeout=START_TIMEOUT_S * 1000)
            # the same password now signs them in through the REST API too
            answer = room.api("POST", f"/users/{learner}/tokens",
                              json={"auth": {"username": learner, "password": password}})
            assert answer.status_code == 201, f"the password chosen on the login page did not stick: {answer}"
            token = answer.json()["token"]
            notebook = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                                   "id": "explorer", "source": explorer_cell()}],
                        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                    "language": "python"}},
                        "nbformat": 4, "nbformat_minor": 5}
            put = requests.put(f"{room.url}/user/{learner}/api/contents/explorer.ipynb",
                               headers={"Authorization": f"token {token}"}, timeout=30,
                               data=json.dumps({"type": "notebook", "format": "json", "content": notebook}))
            assert put.status_code in (200, 201), f"the notebook was not saved in {learner}'s server: {put.text}"
            run_all(page, f"{room.url}/user/{learner}", "", "explorer.ipynb", "hub-explorer", run_timeout_s=90)
            explorer = page.locator(".dvl-explorer").first
            explorer.wait_for(state="visible", timeout=30_000)
            image = explorer.locator("img").first
            page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle(),
                                   timeout=30_000)
            assert "Error displaying widget" not in page.inner_text("body"), "the explorer failed to render"
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "hub-explorer.png"))
        except Exception:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "hub-explorer-failed.png"), full_page=True)
            print(hub_log(room.log))
            raise
        finally:
            page.close()
