"""Training tasks behind `rnnkit train TASK`: each builds data and a model, trains, and writes
its outputs (model file, history CSV, curves PNG) to an output folder."""
