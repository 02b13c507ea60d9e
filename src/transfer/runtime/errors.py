"""The errors a user can fix: reported as one line, the stage exiting with code 2."""


class UserError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""


class ParamError(UserError):
    """A value in params.yaml that is missing, unknown, of the wrong type or out of range."""
