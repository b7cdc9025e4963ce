"""Parsed YAML files remembered within a block, and content keys interned: speed without
stale inputs."""

from __future__ import annotations

import os

from rdusim.cache import content_key
from rdusim.config.arch import load_arch
from rdusim.config.yamlio import load_yaml, remembering_files


def test_a_file_changed_inside_the_block_is_read_again(tmp_path):
    f = tmp_path / "a.yaml"
    f.write_text("x: 1\n")
    with remembering_files() as store:
        first = load_yaml(f)
        first["x"] = 99                      # a caller changing what it got changes nothing kept
        assert load_yaml(f) == {"x": 1}
        assert len(store) == 1
        f.write_text("x: 22\n")              # another size
        os.utime(f, ns=(1, 1))               # and another modification time
        assert load_yaml(f) == {"x": 22}
    f.write_text("x: 3\n")
    assert load_yaml(f) == {"x": 3}          # outside a block nothing is remembered


def test_equal_specs_share_one_interned_key():
    a, b = load_arch("arch/sn40l.yaml"), load_arch("arch/sn40l.yaml")
    assert a is not b
    assert content_key(a) is content_key(b)
    c = load_arch("arch/dgx_h100.yaml")
    assert content_key(c) != content_key(a)
