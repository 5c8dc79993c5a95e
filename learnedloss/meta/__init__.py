"""Meta-training: the differentiable inner loop and the outer-loop trainer."""
