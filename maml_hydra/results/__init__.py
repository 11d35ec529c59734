"""Results: what the experiments' numbers are read from and tabled with.

- ``records``: the compact result file, its fields written once, checked on write and on read;
- ``tensorboard``: a run's scalars, read back from its event files;
- ``stats``: means and standard errors over seeds, and differences paired per seed (tasks
  within one seed are not independent samples);
- ``paper``: the MAML paper's own published numbers, in one place.
"""
