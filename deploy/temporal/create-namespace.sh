#!/bin/sh
# Creates Switchboard's namespace and registers its search attributes (the names and types in
# temporal-dev.yaml `temporal.searchAttributes`). Safe to run again.
set -eu
address=${TEMPORAL_ADDRESS:-temporal:7233}
namespace=${SWITCHBOARD_NAMESPACE:-switchboard}
retention=${NAMESPACE_RETENTION:-7d}

attempt=0
until temporal operator cluster health --address "$address" >/dev/null 2>&1; do
  attempt=$((attempt + 1))
  if [ "$attempt" -ge 60 ]; then echo "Temporal at $address is not healthy"; exit 1; fi
  sleep 2
done

temporal operator namespace describe --address "$address" --namespace "$namespace" >/dev/null 2>&1 ||
  temporal operator namespace create --address "$address" --namespace "$namespace" --retention "$retention"

for pair in Tenant:Keyword CallStatus:Keyword CallDirection:Keyword CallProvider:Keyword EnrichmentState:Keyword CrmSyncState:Keyword LeadStage:Keyword NextActionAt:Datetime; do
  name=${pair%%:*}
  type=${pair#*:}
  if temporal operator search-attribute list --address "$address" --namespace "$namespace" | grep -qw "$name"; then
    echo "search attribute $name exists"
  else
    temporal operator search-attribute create --address "$address" --namespace "$namespace" --name "$name" --type "$type"
  fi
done
echo "namespace $namespace is ready"
