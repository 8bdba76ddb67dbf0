"""What a user does in the Airflow 3 UI, as Playwright steps: sign in, open a DAG's trigger form, read
a task's log. Locators use what the user sees (roles, labels, texts) and the form's own field names
(``element_<param>``)."""

from __future__ import annotations

from typing import Any

from faceidx_dev.local.airflow_stack import quote_id
from faceidx_dev.local.product import LocalProduct


def login(page: Any, product: LocalProduct) -> None:
    page.goto(f"{product.url}/auth/login")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(product.password or "")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)


def open_trigger_form(page: Any, product: LocalProduct, dag_id: str) -> Any:
    """The DAG page's *Trigger* dialog, fully rendered; returns the dialog."""
    page.goto(f"{product.url}/dags/{dag_id}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.locator("[role=dialog][data-scope=dialog][data-part=content]")  # not a date popover
    dialog.get_by_text("Run Parameters").wait_for()
    return dialog


def pick_datetime(page: Any, dialog: Any, label: str, when: Any) -> None:
    """Set the date-time field ``label`` (``From``, ``To``) through its picker, as a user types it."""
    group = dialog.get_by_role("group").filter(has=page.get_by_text(label, exact=True))
    group.get_by_test_id("datetime-input").click()
    picker = page.locator("[data-scope=popover][data-part=content][data-state=open]")
    picker.get_by_placeholder("YYYY/MM/DD").fill(f"{when:%Y/%m/%d}")
    picker.get_by_placeholder("HH:mm").fill(f"{when:%H:%M}")
    page.keyboard.press("Escape")
    group.get_by_text(f"{when:%b} {when.day:02d}, {when:%Y}").wait_for()


def set_configuration_json(page: Any, dialog: Any, conf: dict[str, Any]) -> None:
    """Replace the run's conf in *Advanced Options* -> *Configuration JSON* (a Monaco editor)."""
    import json

    dialog.get_by_role("button", name="Advanced Options").click()
    dialog.locator(".monaco-editor .view-lines").last.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(json.dumps(conf))


def field(dialog: Any, param: str) -> Any:
    """The form field of one Param (text inputs, text areas, switches and hidden selects alike)."""
    return dialog.locator(f"[name='element_{param}'], #element_{param}").first


def runs(product: LocalProduct, dag_id: str, run_type: str | None = None) -> list[dict[str, Any]]:
    assert product.stack is not None
    params: dict[str, Any] = {"limit": 100, "order_by": "-run_after"}
    if run_type:
        params["run_type"] = run_type
    return list(product.stack.api("GET", f"/dags/{dag_id}/dagRuns", params=params)["dag_runs"])


def new_run(product: LocalProduct, dag_id: str, before: set[str], timeout: float = 60.0) -> str:
    """The run id of the run that appeared since ``before`` (the run ids seen before the click)."""
    assert product.stack is not None
    found = product.stack.wait_for(
        f"a new {dag_id} run",
        lambda: [r["dag_run_id"] for r in runs(product, dag_id, "manual") if r["dag_run_id"] not in before],
        timeout=timeout,
        interval=1.0,
    )
    assert len(found) == 1, found
    return str(found[0])


def open_task_log(page: Any, product: LocalProduct, dag_id: str, run_id: str, task_id: str) -> Any:
    """The task instance page, Logs tab, as a user reaches it from the grid; returns the page."""
    page.goto(f"{product.url}/dags/{dag_id}/runs/{quote_id(run_id)}/tasks/{task_id}")
    return page
