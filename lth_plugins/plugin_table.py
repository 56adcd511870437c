"""The core's own plugins, as entry points: `setup.py` registers them and the registry finds them without installed
metadata (a plain checkout on sys.path). Plain data: setup.py reads this file without importing the package."""

BUILTINS = {
    "lth_plugins.pruners": {
        "global_magnitude": "lth_plugins.pruners:GlobalMagnitude",
        "layerwise_magnitude": "lth_plugins.pruners:LayerwiseMagnitude",
        "random": "lth_plugins.pruners:RandomPruner",
    },
    "lth_plugins.resets": {
        "init": "lth_plugins.resets:InitReset",
        "late": "lth_plugins.resets:LateReset",
        "random": "lth_plugins.resets:RandomReinit",
    },
    "lth_plugins.commands": {
        "status": "lth_plugins.commands:StatusCommand",
        "plugins": "lth_plugins.commands:PluginsCommand",
        "report": "lth_plugins.commands:ReportCommand",
        "demo-core": "lth_plugins.commands:DemoCoreCommand",
        "sweep": "lth_plugins.commands:SweepCommand",
    },
    "lth_plugins.sweep_targets": {
        "torch": "lth_plugins.sweep.targets:TorchTarget",
    },
    "lth_plugins.frameworks": {
        "torch": "lth_plugins.demo",
    },
    # Optimizers whose update of a weight is exactly zero when that weight, its gradient and its per-weight
    # state are zero; the masks need no pass over the weights after their steps. Matched by name, never imported.
    "lth_plugins.zero_preserving_optimizers": {
        "sgd": "torch.optim.sgd:SGD",
        "adam": "torch.optim.adam:Adam",
        "adamw": "torch.optim.adamw:AdamW",
        "rmsprop": "torch.optim.rmsprop:RMSprop",
        "adagrad": "torch.optim.adagrad:Adagrad",
    },
}


def entry_point_lines(namespace: str):
    """setup.py's form: ["name = module:attr", ...]."""
    return [f"{name} = {target}" for name, target in BUILTINS.get(namespace, {}).items()]
