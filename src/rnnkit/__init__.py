"""rnnkit: Keras-exact recurrent neural network layers on PyTorch."""
