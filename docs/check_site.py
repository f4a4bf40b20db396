"""Open every page of the built documentation site in headless Chromium and fail on what a reader would see broken.

``sphinx -W`` checks the sources; this checks the pages.  Each page is loaded at 1366 x 900 px (a laptop screen),
MathJax is given time to typeset, and the page fails on:

- **math left as text**: an equation MathJax did not typeset, or ``$``-wrapped TeX or ``$$`` in the text (display
  math written inside a list item ends so);
- **a table left as text**: lines of ``| a | b |`` with a ``|---|`` rule in a paragraph or a cell's output;
- **a broken image**: an ``<img>`` that loaded no picture;
- **clipped code**: a code block or printed output whose lines run more than ``CLIP_CHARS`` characters past the
  visible width (readers do not scroll sideways);
- **a console error**, an uncaught exception or a failed request for one of the site's own files.

Usage, from the checkout root after building the site (``python -m pip install ".[docs]"`` installs Playwright;
Chromium is Debian's ``chromium`` package, which ``.ci/run`` installs where it is missing)::

    python docs/check_site.py docs/_build/html            # every page; screenshots in docs/_build/screenshots
    python docs/check_site.py --self-test                 # builds a small site with planted faults: each is caught

The exit status is 1 when a page fails, and every failure is listed with its page.
"""

import argparse
import fnmatch
import functools
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

VIEWPORT = {"width": 1366, "height": 900}
#: Characters a code line may run past the visible width of its block before the block counts as clipped.
CLIP_CHARS = 3
#: Folders of the built site that hold no pages of ours (highlighted source listings, assets).
SKIP_DIRS = {"_modules", "_sources", "_static", "_images", "screenshots"}
#: Pages that Sphinx writes for itself.
SKIP_PAGES = {"genindex.html", "search.html", "py-modindex.html"}
#: Pages whose screenshot (the whole page) is saved for a person to look at.
SCREENSHOT_PAGES = ("index.html", "conventions.html", "notebooks/04_joint_formulation.html",
                    "notebooks/09_kernels_cpu_vs_gpu.html", "notebooks/08_evaluation.html")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Run in the page once MathJax is done: a list of [kind, detail] faults.
FIND_FAULTS = r"""
() => {
  const faults = [];
  const skip = 'pre, code, script, style, textarea, mjx-container, mjx-assistive-mml, .MathJax';
  const walker = document.createTreeWalker(document.querySelector('main') || document.body, NodeFilter.SHOW_TEXT);
  const texInDollars = /\$[^$\n]*\\[A-Za-z]+[^$\n]*\$/;
  // a table's rule row, |---|---|, whose dashes the site's typography may have turned into em or en dashes
  const pipeRule = /\|\s*:?(-{3,}|[\u2013\u2014]+):?\s*\|\s*:?(-{3,}|[\u2013\u2014]+):?\s*\|/;
  const seen = new Set();
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest(skip)) continue;
    const text = node.textContent;
    if (text.includes('$$') || texInDollars.test(text)) faults.push(['math as text', text.trim().slice(0, 90)]);
  }
  for (const el of document.querySelectorAll('main p, main li, main td, main .output pre, main .cell_output pre')) {
    if (seen.has(el)) continue;
    seen.add(el);
    const text = el.innerText || '';
    if (pipeRule.test(text)) faults.push(['table as text', text.trim().slice(0, 90)]);
  }
  // display math written inside a list item: MathJax typesets the inner $...$, the outer dollars stay as text
  for (const el of document.querySelectorAll('main .math')) {
    const before = el.previousSibling, after = el.nextSibling;
    if ((before && before.nodeType === 3 && before.textContent.endsWith('$'))
        || (after && after.nodeType === 3 && after.textContent.startsWith('$')))
      faults.push(['math as text', `a stray $ beside ${el.textContent.trim().slice(0, 70)}`]);
  }
  for (const el of document.querySelectorAll('main .math')) {
    if (!el.querySelector('mjx-container') && /\\\(|\\\[|\$/.test(el.textContent))
      faults.push(['math not typeset', el.textContent.trim().slice(0, 90)]);
  }
  for (const img of document.querySelectorAll('main img')) {
    if (!img.complete || img.naturalWidth === 0) faults.push(['broken image', img.getAttribute('src')]);
  }
  const probe = document.createElement('span');
  probe.textContent = 'M'.repeat(100);
  for (const pre of document.querySelectorAll('main pre')) {
    const over = pre.scrollWidth - pre.clientWidth;
    if (over <= 0) continue;
    probe.style.font = getComputedStyle(pre).font;
    probe.style.position = 'absolute';
    probe.style.visibility = 'hidden';
    document.body.appendChild(probe);
    const charWidth = probe.getBoundingClientRect().width / 100;
    probe.remove();
    const chars = over / charWidth;
    if (chars > CLIP_CHARS) {
      const longest = pre.innerText.split('\n').reduce((a, b) => (b.length > a.length ? b : a), '');
      faults.push(['clipped code', `${Math.round(chars)} characters hidden: ${longest.trim().slice(0, 70)}`]);
    }
  }
  return faults;
}
""".replace("CLIP_CHARS", str(CLIP_CHARS))

WAIT_FOR_MATHJAX = """
async () => {
  if (!document.querySelector('.math')) return 'no math';
  for (let i = 0; i < 100 && !(window.MathJax && MathJax.startup && MathJax.startup.promise); i++)
    await new Promise(r => setTimeout(r, 100));
  if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) return 'MathJax did not load';
  await MathJax.startup.promise;
  return 'typeset';
}
"""


def pages(site):
    """The site's HTML pages, relative to its root, in a stable order."""
    found = []
    for path in sorted(site.rglob("*.html")):
        rel = path.relative_to(site)
        if rel.parts[0] in SKIP_DIRS or rel.as_posix() in SKIP_PAGES:
            continue
        found.append(rel.as_posix())
    return found


@functools.cache
def _quiet_handler(directory):
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=directory, **kwargs)

        def log_message(self, *args):
            pass

    return Handler


def serve(site):
    """Serve ``site`` on a free loopback port in a background thread; returns the server and its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _quiet_handler(os.fspath(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def chromium_path():
    """Debian's Chromium (or the one ``CHROMIUM`` names)."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise SystemExit("check_site: no Chromium found; install Debian's package `chromium` (apt-get install "
                         "chromium) or set CHROMIUM to a Chromium executable")
    return path


def check(site, screenshots=None, screenshot_pages=SCREENSHOT_PAGES, only=None):
    """Load every page of the built site ``site``; returns ``{page: [(kind, detail), ...]}`` for the pages that fail."""
    from playwright.sync_api import sync_playwright

    site = Path(site)
    if not (site / "index.html").is_file():
        raise SystemExit(f"check_site: {site} holds no index.html; build the site first")
    server, base = serve(site)
    failures = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            for rel in pages(site):
                if only and not any(fnmatch.fnmatch(rel, pattern) for pattern in only):
                    continue
                page = browser.new_page(viewport=VIEWPORT)
                faults = []
                page.on("console", lambda m, f=faults: m.type == "error" and f.append(("console error", m.text)))
                page.on("pageerror", lambda e, f=faults: f.append(("uncaught exception", str(e))))
                page.on("requestfailed", lambda r, f=faults: r.url.startswith(base)
                        and f.append(("failed request", r.url[len(base):])))
                page.on("response", lambda r, f=faults: r.status >= 400 and r.url.startswith(base)
                        and f.append(("failed request", f"{r.status} {r.url[len(base):]}")))
                page.goto(base + rel, wait_until="load")
                state = page.evaluate(WAIT_FOR_MATHJAX)
                if state == "MathJax did not load":
                    faults.append(("math not typeset", state))
                faults += [tuple(f) for f in page.evaluate(FIND_FAULTS)]
                if screenshots is not None and rel in screenshot_pages:
                    out = Path(screenshots) / (rel.replace("/", "_").removesuffix(".html") + ".png")
                    out.parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=out, full_page=True)
                if faults:
                    failures[rel] = faults
                page.close()
            browser.close()
    finally:
        server.shutdown()
    return failures


def report(failures, out=sys.stdout):
    for rel, faults in failures.items():
        for kind, detail in faults:
            print(f"{rel}: {kind}: {detail}", file=out)


# ---- the self-test: a small site with one planted fault a page, each of which must be caught ----

PLANTED = {
    "clean": "# Clean\n\nInline $a^2$ and display math:\n\n$$\nx = \\frac{1}{2}\n$$\n\n"
             "| a | b |\n|---|---|\n| 1 | 2 |\n\n- an item with $y_i$ in it\n\n```python\nprint('a short line')\n```\n",
    "math_in_list": "# Math in a list\n\n- the mask is a softmax:\n$$p = \\frac{e^{a}}{e^{a} + e^{b}}$$\n"
                    "- the score is an average\n",
    "table_as_text": "# Table as text\n\n```{raw} html\n<p>| a | b |<br>|---|---|<br>| 1 | 2 |</p>\n```\n",
    "broken_image": "# Broken image\n\n```{raw} html\n<img src='nowhere.png' alt='missing'>\n```\n",
    "clipped_code": "# Clipped code\n\n```python\nx = [" + ", ".join(["1234567"] * 40) + "]\n```\n",
    "console_error": "# Console error\n\n```{raw} html\n<script>console.error('planted');</script>\n```\n",
}
EXPECTED = {"math_in_list": "math", "table_as_text": "table as text", "broken_image": "broken image",
            "clipped_code": "clipped code", "console_error": "console error"}


def self_test():
    """Build a site of planted faults with this project's Sphinx settings; each must be caught, the clean page pass."""
    docs = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        (src / "_static").mkdir(parents=True)
        for name in os.listdir(docs / "_static"):
            shutil.copy(docs / "_static" / name, src / "_static" / name)
        conf = (docs / "conf.py").read_text()
        (src / "conf.py").write_text(conf + '\nnb_execution_mode = "off"\nextensions.remove("numpydoc")\n'
                                     'sys.path.insert(0, os.path.abspath("."))\nexclude_patterns = ["_build"]\n')
        toc = "\n".join(PLANTED)
        (src / "index.md").write_text(f"# Planted\n\n```{{toctree}}\n{toc}\n```\n")
        for name, text in PLANTED.items():
            (src / f"{name}.md").write_text(text)
        build = Path(tmp) / "html"
        subprocess.run([sys.executable, "-m", "sphinx", "-q", "-b", "html", src, build], check=True)
        failures = check(build)
    problems = []
    if "clean.html" in failures:
        problems.append(f"the clean page failed: {failures['clean.html']}")
    for name, kind in EXPECTED.items():
        found = [k for k, _ in failures.get(f"{name}.html", [])]
        if not any(kind in k for k in found):
            problems.append(f"{name}: expected a '{kind}' fault, found {found or 'none'}")
    for line in problems:
        print("check_site self-test:", line)
    if not problems:
        print(f"check_site self-test: each of the {len(EXPECTED)} planted faults caught, the clean page passes")
    return not problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", nargs="?", default="docs/_build/html", help="the built site (its index.html)")
    parser.add_argument("--screenshots", default=None,
                        help="folder for full-page screenshots of a few pages (default: SITE/../screenshots)")
    parser.add_argument("--only", nargs="+", metavar="GLOB",
                        help="check only the pages that match (e.g. 'notebooks/*')")
    parser.add_argument("--self-test", action="store_true", help="check that planted faults are caught")
    args = parser.parse_args(argv)
    if args.self_test:
        return 0 if self_test() else 1
    site = Path(args.site)
    shots = Path(args.screenshots) if args.screenshots else site.parent / "screenshots"
    failures = check(site, screenshots=shots, only=args.only)
    report(failures)
    n = len([p for p in pages(site) if not args.only or any(fnmatch.fnmatch(p, g) for g in args.only)])
    print(f"check_site: {n - len(failures)} of {n} pages pass; screenshots in {shots}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
