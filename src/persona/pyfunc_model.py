"""The model-from-code file `pyfunc.log_pyfunc` logs: MLflow runs it to build the model.

Logging the model as this file (not a pickled Python object) is MLflow's recommended way:
no CloudPickle, and no warning on every model log. Nothing else imports this module.
"""

from mlflow.models import set_model

from persona.pyfunc import PersonaPyfunc

set_model(PersonaPyfunc())
