"""Write scikit-learn's diabetes table (442 patients, 10 features, a disease progression score) as a CSV.

python make_csv.py [diabetes.csv]; then python ../../sweep.py data=csv data.path=diabetes.csv data.target=target
data.task=regression ...
"""

import sys

from sklearn.datasets import load_diabetes

if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "diabetes.csv"
    table = load_diabetes(as_frame=True).frame  # the ten features and the `target` column
    table.to_csv(path, index=False)
    print(f"wrote {path}: {len(table)} rows, columns {', '.join(table.columns)}")
