"""Every figure README.md and docs/*.md print, regenerated from the code by one command.

    python -m rdusim.docs            # re-run the commands, rewrite every marked figure and docs/figures.json
    python -m rdusim.docs --check    # re-run, compare within rounding, write nothing (exit 1 on a difference)

A figure is marked in the markdown (:mod:`rdusim.docs.markers`: a block between
``<!-- rdusim:begin NAME -->`` / ``<!-- rdusim:end NAME -->``, or inline
``<!--rdusim:NAME-->42.9<!--/rdusim-->``) and made by the function of that name in
:mod:`rdusim.docs.figures` (and ``figures_serve``, ``figures_nodes``) from the command it
comes from. ``docs/figures.json`` holds what
the last regeneration wrote, so the default test run checks, without simulating anything,
that no marked figure was edited by hand (``tests/test_readme_figures.py``); the slow test
regenerates every figure and compares.
"""
