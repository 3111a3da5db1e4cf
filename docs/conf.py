"""Sphinx configuration for the skdim documentation.

Build with ``docs/build.sh`` (see that file): it runs ``sphinx-build -W`` so
that any warning -- including an example that raises -- fails the build.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# Document the checkout, not whatever skdim happens to be installed.
sys.path.insert(0, str(ROOT))

# The examples run on the CPU, with the thread count given by the caller
# (docs/build.sh); set before the import below, which imports torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("MPLBACKEND", "agg")

import skdim  # noqa: E402

# -- Project ------------------------------------------------------------------
project = "skdim"
author = "The skdim developers"
copyright = "2026, The skdim developers"
release = skdim.__version__
version = ".".join(release.split(".")[:2])

# -- General ------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"
default_role = "literal"
# No intersphinx: the docs must build on machines without internet access.

autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"inherited-members": False, "member-order": "groupwise"}
autodoc_typehints = "none"  # numpydoc's Parameters section already carries the types

numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -- HTML ---------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skdim {release}"
html_static_path = ["_static"]
html_css_files = ["skdim.css"]
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "header_links_before_dropdown": 6,
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
    # External resources would need the internet at build or view time.
    "icon_links": [],
}
html_sidebars = {"changelog": [], "install": []}
html_show_sourcelink = True

# -- sphinx-gallery -----------------------------------------------------------
# Environment for the examples: see the top of this file.
sphinx_gallery_conf = {
    "examples_dirs": ["../examples"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "doc_module": ("skdim",),
    "backreferences_dir": "generated/backreferences",
    "reference_url": {"skdim": None},
    "inspect_global_variables": False,
    "remove_config_comments": True,
    "reset_modules": ("matplotlib",),
    "show_memory": False,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    # A failing example fails the build (sphinx-build -W turns the report into an error).
    "only_warn_on_example_error": False,
    "abort_on_example_error": False,
    "min_reported_time": 1,
}

