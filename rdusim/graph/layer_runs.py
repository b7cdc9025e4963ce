"""How a model's step visits its decoder layers, and the whole model's visits from a
three-layer template.

A step's ops (or kernels) fall into runs of one layer each (:func:`runs`; -1 for what
belongs to no layer: embedding, head, loss). Inference visits the layers once, upwards; a
training step visits them three times: forward (up), backward (down) and the optimizer
(down), with the head and loss between. Cut to three layers, the first (fed by the
embedding), the last (feeding the head, and first in backward) and one between, the step
is a template for the whole model: every stretch of layer runs between non-layer runs
visits 0, 1, 2 or 2, 1, 0 (or several such visits back to back: a
fine-tuning step whose head is frozen has no optimizer op between its backward and
optimizer visits), and the whole model's runs are the same with the middle run
repeated for every middle layer and the last run moved to the last layer (:func:`expand`).
"""

from __future__ import annotations

from itertools import groupby

TEMPLATE_LAYERS = 3      # first, one standing for every middle layer, last
MID = 1                  # the template layer that is repeated


def runs(layers_in_order: list[int]) -> list[tuple[int, int]]:
    """(layer, count) of each maximal run of equal layers."""
    return [(layer, sum(1 for _ in group)) for layer, group in groupby(layers_in_order)]


def expand(template: list[int], layers: int) -> list[list[int]] | None:
    """For each run of the template (its layer, -1 for no layer), the layers of the whole
    model's runs it becomes, in order; None if a stretch of layer runs does not visit the
    template's layers 0, 1, 2 up or 2, 1, 0 down, or the model has fewer layers."""
    if layers < TEMPLATE_LAYERS:
        return None
    last = TEMPLATE_LAYERS - 1
    up, down = list(range(TEMPLATE_LAYERS)), list(range(last, -1, -1))
    out: list[list[int]] = []
    stretch: list[int] = []
    for layer in template + [-1]:
        if layer >= 0:
            stretch.append(layer)
            continue
        if len(stretch) % TEMPLATE_LAYERS:
            return None
        for at in range(0, len(stretch), TEMPLATE_LAYERS):    # visits back to back (a backward
            visit = stretch[at:at + TEMPLATE_LAYERS]           # then an optimizer with no
            if visit == up:                                    # non-layer op between them)
                out += [[0], list(range(1, layers - 1)), [layers - 1]]
            elif visit == down:
                out += [[layers - 1], list(range(layers - 2, 0, -1)), [0]]
            else:
                return None
        stretch = []
        out.append([-1])
    return out[:-1]
