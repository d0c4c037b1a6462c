"""The zoo's exceptions: each bad input gets one clear, specific error (all derive from ZooError)."""


class ZooError(Exception):
    """Base class of every error raised by ebm-zoo."""


class UnknownEntryError(ZooError, KeyError):
    """A registry name that does not exist (the message lists the closest names)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class ConfigError(ZooError, ValueError):
    """A malformed entry, config.json, sampler option, flag or argument (the message names it)."""


class InputError(ZooError, ValueError):
    """A tensor with the wrong shape, dtype, value range, or NaN/inf values."""


class WeightsIntegrityError(ZooError):
    """Downloaded or mirrored weights whose sha256 or size does not match the pinned value."""


class WeightsNotFoundError(ZooError, FileNotFoundError):
    """Weights could be found neither locally, in a mirror, nor on the Hub."""


class NoPretrainedWeightsError(WeightsNotFoundError):
    """An entry that has no published weights, loaded without ``pretrained=False``."""


class DatasetNotFoundError(ZooError, FileNotFoundError):
    """A dataset that is neither in a local mirror nor reachable on the Hub."""


class ChainDivergedError(ZooError, FloatingPointError):
    """A sampling chain produced non-finite values or left the data range far behind."""


class TrainingDivergedError(ZooError, FloatingPointError):
    """Training produced a non-finite loss or weights; nothing non-finite was saved."""


class HubError(ZooError):
    """A Hub call (push, create repo) that failed or timed out."""
