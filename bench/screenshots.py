"""Screenshots of the delivery log, a delivery's detail, the usage chart, the record form and a rule's actions,
for the documentation: docs/screenshots/, shown in docs/use/usage-and-log.md, docs/use/roles.md and
docs/use/workflow-rules.md.

Run the product first (./scripts/dev.sh), then, with Debian's chromium and the playwright package
(pip install playwright; no browser download is needed):

    .venv/bin/python bench/screenshots.py [--url http://127.0.0.1:8000] [--out docs/screenshots]

It logs in as the demo admin (var/admin-password), changes a demo deal through the REST API so that
rules fire, and saves one PNG per page, as a new user would see them.
"""
import argparse
import json
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

BASE_DIR = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def api(url: str, key: str, method: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(f"{url}/api/v1/records/{path}", data=json.dumps(body).encode(), method=method,
                                     headers={"X-API-Key": key, "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)["data"]


def record_form(page, url: str, out: Path) -> None:
    """Records → Add → Deals: the form with an error beside its field, then with the account search open."""
    for shot, amount in (("record-form-error.png", "lots"), ("record-form.png", "12500")):
        page.goto(f"{url}/admin/crm/record/add/")
        page.select_option("#id_module", label="Deals (Zylker Inc)")
        page.click("#choose-module input[type=submit]")
        page.wait_for_selector("#record_form")
        page.fill("#id_values__Deal_Name", "Website redesign")
        page.fill("#id_values__Amount", amount)
        page.select_option("#id_values__Stage", "Negotiation/Review")
        page.select_option("#id_values__Type", "New Business")
        page.fill("#id_values__Payment_Due_Date", "2026-12-15")
        page.click(".field-values__Account_Name .select2-selection")
        page.fill(".select2-search__field", "z")
        page.wait_for_selector(".select2-results__option:not(.loading-results)")
        if amount == "lots":  # saved with a word for the amount: the error, and everything typed kept
            page.keyboard.press("Enter")
            page.click("input[name=_save]")
            page.wait_for_selector(".errornote")
        page.screenshot(path=str(out / shot), full_page=True)


def rule_actions(page, url: str, out: Path) -> None:
    """A workflow rule's actions, each with its "View webhook log" link, within the page's width."""
    page.goto(f"{url}/admin/workflows/workflowrule/?q=Commission")
    page.click("#result_list tbody tr th a")
    page.wait_for_selector("#actions-group")
    page.locator("#actions-group").screenshot(path=str(out / "rule-actions.png"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--out", default=str(BASE_DIR / "docs" / "screenshots"))
    parser.add_argument("--var", default=str(BASE_DIR / "var"), help="the demo's VAR_DIR (its logins and API key)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    password = (Path(args.var) / "admin-password").read_text().strip()
    key = (Path(args.var) / "api-key").read_text().strip()
    deal = api(args.url, key, "POST", "Deals/", {"Deal_Name": "Screenshot deal", "Type": "New Business",
                                                  "Stage": "Negotiation/Review", "Amount": "1500"})
    api(args.url, key, "PATCH", f"Deals/{deal['id']}/", {"Stage": "Closed Won"})
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{args.url}/admin/login/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.goto(f"{args.url}/admin/dispatcher/delivery/")
        page.screenshot(path=str(out / "delivery-log.png"), full_page=True)
        page.click("#result_list tbody tr th a")
        page.wait_for_selector("#content-main")
        page.screenshot(path=str(out / "delivery-detail.png"), full_page=True)
        page.goto(f"{args.url}/admin/dispatcher/dailyusage/chart/")
        page.wait_for_selector("#usage-table")
        page.screenshot(path=str(out / "usage-chart.png"), full_page=True)
        record_form(page, args.url, out)
        rule_actions(page, args.url, out)
        browser.close()
    print(f"saved {', '.join(p.name for p in sorted(out.glob('*.png')))} in {out}")


if __name__ == "__main__":
    main()
