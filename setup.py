"""Build hook: compile the hot-path modules (ACD engine, events, metrics, simulator) to C
with mypyc. The modules are plain typed Python and run unchanged without compilation
(HOTLINE_PURE_PYTHON=1 skips it); compiled, the simulator runs several times faster."""

import os

from setuptools import setup

HOT_MODULES = [
    "src/hotline/events/types.py",
    "src/hotline/acd/config.py",
    "src/hotline/acd/commands.py",
    "src/hotline/acd/index.py",
    "src/hotline/acd/engine.py",
    "src/hotline/cms/metrics.py",
    "src/hotline/sim/distributions.py",
    "src/hotline/sim/runner.py",
]

ext_modules = []
if not os.environ.get("HOTLINE_PURE_PYTHON"):
    from mypyc.build import mypycify

    ext_modules = mypycify(["--config-file=pyproject.toml", *HOT_MODULES], opt_level="3")

setup(ext_modules=ext_modules)
