"""Every exception the synchronizer raises, in one place."""


class SynchronizerError(Exception):
    """Base class of the project's exceptions."""


class ConfigError(SynchronizerError):
    """A configuration value is wrong; the message names the option."""


class PluginLoadError(SynchronizerError):
    """A plugin could not be found, imported or constructed."""


class PluginUnavailable(SynchronizerError):
    """A plugin's ``available()`` check said no; it is not started."""


class TransientError(SynchronizerError):
    """A service is down or timed out: back off and retry."""


class PermanentError(SynchronizerError):
    """Retrying cannot help (bad credentials, missing endpoint): disable the plugin."""


class IncompleteListing(TransientError):
    """A listing stopped part way (a page failed): no deletes may be inferred."""


class InvalidNotification(SynchronizerError):
    """A notification is malformed, oversized or of an unknown version."""


class InvalidRecord(SynchronizerError):
    """An API record could not be converted into an entity."""


class DaemonUnreachable(SynchronizerError):
    """No synchronizer daemon answered a client's call on its RPC topic."""


class StateLocked(SynchronizerError):
    """Another daemon holds the state store; the message names its path and pid."""


class Undelivered(SynchronizerError):
    """A sink gave up on a change (the daemon is stopping): it stays to be sent."""


class Fenced(SynchronizerError):
    """A partition's write came from a term that is over: another member owns it now."""
