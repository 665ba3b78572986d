"""`hello`: greets each input: "Hello <input>"."""

from .base import Context, Workload


class Hello(Workload):
    name = "hello"
    description = 'Answers "Hello <input>" for each input item.'

    def execute(self, ctx: Context, inputs: list[bytes]) -> list[bytes]:
        return [b"Hello " + data for data in inputs]
