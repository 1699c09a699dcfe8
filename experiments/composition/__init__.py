"""Zero-shot on held-out instrument x attribute combinations: an experiment on skclap's public API.

Importing it registers the audio tower ``cnn14-descriptors`` (:mod:`.descriptors`); its training
objective is :class:`.unsaid.CompletionObjective`; the protocol, measures and report are in
:mod:`.protocol`. Run it with ``python -m experiments.composition`` from a source checkout; its page is
docs/composition.md.
"""

from . import descriptors as descriptors
