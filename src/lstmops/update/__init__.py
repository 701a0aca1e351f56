"""The five-step update process as plain functions returning typed results (collect, evaluate the
deployed model, develop candidates, compare, promote); Prefect flows in ``flows/`` only wire them."""
