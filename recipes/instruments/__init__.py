"""The bundled instrument CLAP: trained on two soundfonts, tested on one it never heard.

``python -m recipes.instruments --seeds 0,1,2 --out runs/instruments`` (see :mod:`.recipe`).
"""
