"""Compiled kernels: pure functions over arrays that the trainer allocates and owns.

Dimension letters, here and everywhere in fastrnn:
    B = parallel streams, T = unroll length (seq_length), V = vocabulary,
    H = hidden size, L = layers, G = gates per layer (1 rnn, 3 gru, 4 lstm).
Kernels never print, read files or allocate inside their loops.
"""
