// Services that run on the stack.
