"""Commands: composition roots that read files and the environment, build, run, exit."""
