"""A histogram's cumulative bucket counts and sum."""


class Histogram:
    """Cumulative bucket counts and sum, as Prometheus exposes them.
    Not thread safe: its owner's lock serialises its use."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        """Count one duration."""
        # A clock that stepped back gives no negative duration.
        seconds = max(0.0, seconds)
        self.total += seconds
        for i, bound in enumerate(self.bounds):
            if seconds <= bound:
                self.counts[i] += 1
                return
        self.counts[-1] += 1

    def buckets(self) -> list[tuple[str, float]]:
        """(upper bound, cumulative count) of every bucket, +Inf last."""
        out, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts,
                                strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound),
                        float(running)))
        return out
