"""maml-hydra launchers (Hydra finds launcher plugins only under hydra_plugins)."""
