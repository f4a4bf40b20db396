"""Sphinx configuration of the FCIS twin's documentation site.

Build it from the checkout root with ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` after
``python -m pip install ".[docs]"``.  The API pages are generated from the docstrings (autosummary, numpydoc); the
Markdown pages are read by MyST-NB.
"""

import os
import sys

# the checkout root, so that fcis_twin imports from the tree being documented (fcis_twin/__init__.py maps the
# reference/ and accelerated/ folders to their installed names)
sys.path.insert(0, os.path.abspath(".."))

project = "FCIS twin"

extensions = [
    "myst_nb",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx-mathjax-offline",  # MathJax served with the site: the equations render without a network
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}  # autosummary writes .rst
exclude_patterns = ["_build", "**.ipynb_checkpoints", "notebooks/README.md", "check_site.py"]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
# docs/notebooks links to the tutorials in notebooks/; they are stored without outputs and run at every build, so
# that the site shows their figures (a cell that fails fails the build)
nb_execution_mode = "force"
nb_execution_timeout = 120
nb_execution_raise_on_error = True
nb_execution_show_tb = True
# a Markdown output of a cell (IPython's display(Markdown(...))) is parsed as MyST, so its tables become HTML tables
nb_render_markdown_format = "myst"

autosummary_generate = True
autodoc_default_options = {"members": True}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

html_theme = "pydata_sphinx_theme"
html_title = "FCIS twin"
html_theme_options = {
    "navigation_with_keys": False,
    # the tutorials (notebooks/), the stages (stages/) and the API pages (generated/) give the width of "On this
    # page" to their code and figures; the pages at the top keep it
    "secondary_sidebar_items": {"*": ["page-toc", "sourcelink"]},
}
html_context = {"default_mode": "light"}
# a wide content column, prose kept to a readable measure, and figures that open at full size (docs/check_site.py
# loads every page in a browser and fails on clipped code, math or tables left as text, broken images)
html_static_path = ["_static"]
html_css_files = ["fcis.css"]
html_js_files = ["fcis.js"]
html_favicon = "_static/favicon.png"
