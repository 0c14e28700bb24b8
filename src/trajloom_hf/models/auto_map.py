"""``auto_map`` in a model's ``config.json`` (diffusers ``AutoModel`` remote-code loading, written by
:func:`trajloom_hf.pipelines.hub_layout.write_hub_layout`) is loading metadata, not a constructor argument."""

from __future__ import annotations


class AutoMapConfigMixin:
    """Put before ``ModelMixin, ConfigMixin``: ``from_pretrained``/``from_config`` drop ``auto_map`` instead of
    warning that it "was passed but is not expected" (diffusers 0.42 warns even for its own
    ``register_for_auto_class``)."""

    @classmethod
    def extract_init_dict(cls, config_dict, **kwargs):
        config_dict = {k: v for k, v in config_dict.items() if k != "auto_map"}
        return super().extract_init_dict(config_dict, **kwargs)
