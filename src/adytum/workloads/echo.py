"""`echo-result`: Avalon's echo workload, "RESULT: <input>" for each input."""

from .base import Context, Workload


class EchoResult(Workload):
    name = "echo-result"
    description = 'Answers "RESULT: <input>" for each input item (Avalon\'s echo).'

    def execute(self, ctx: Context, inputs: list[bytes]) -> list[bytes]:
        return [b"RESULT: " + data for data in inputs]
