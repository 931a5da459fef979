"""Screenshots of the delivery log, a delivery's detail and the usage chart, for the README.

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--out", default=str(BASE_DIR / "docs" / "screenshots"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    password = (BASE_DIR / "var" / "admin-password").read_text().strip()
    key = (BASE_DIR / "var" / "api-key").read_text().strip()
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
        browser.close()
    print(f"saved {', '.join(p.name for p in sorted(out.glob('*.png')))} in {out}")


if __name__ == "__main__":
    main()
