"""The paper: the `report` stage and what it uses to write, draw, test and typeset the run."""
