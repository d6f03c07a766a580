"""blendphot: deep-learning photometry of blended galaxies (Boucaud et al. 2019).

The package holds pure functions over arrays; file I/O lives in :mod:`blendphot.io`
and the workflow scripts. Each stage of the Snakemake workflow has one module here.
"""

from blendphot.errors import BlendphotError, ConfigError, InputError

__all__ = ["BlendphotError", "ConfigError", "InputError", "__version__"]
__version__ = "0.1.0"
