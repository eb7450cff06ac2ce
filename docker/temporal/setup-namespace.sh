#!/bin/sh
# Waits for the Temporal frontend, then makes callerloop's namespace (with its retention)
# and the search attributes operators filter calls on. Safe to run again.
set -eu

until temporal operator cluster health --address "$TEMPORAL_ADDRESS" 2>/dev/null | grep -q SERVING; do
  echo "waiting for Temporal at $TEMPORAL_ADDRESS"
  sleep 2
done

if temporal operator namespace describe --address "$TEMPORAL_ADDRESS" --namespace "$NAMESPACE" >/dev/null 2>&1; then
  temporal operator namespace update --address "$TEMPORAL_ADDRESS" --namespace "$NAMESPACE" \
    --retention "$RETENTION"
else
  temporal operator namespace create --address "$TEMPORAL_ADDRESS" --namespace "$NAMESPACE" \
    --retention "$RETENTION"
fi

# A new namespace takes a moment to reach the frontend's cache.
until temporal operator search-attribute list --address "$TEMPORAL_ADDRESS" --namespace "$NAMESPACE" >/dev/null 2>&1; do
  echo "waiting for namespace $NAMESPACE"
  sleep 1
done

# Keep in step with workflows/search_attributes.py (tests/docker checks it).
for attribute in Agency=Keyword IncidentId=Keyword CallStatus=Keyword CallPriority=Int TextingState=Keyword; do
  name=${attribute%=*}
  type=${attribute#*=}
  if temporal operator search-attribute list --address "$TEMPORAL_ADDRESS" --namespace "$NAMESPACE" \
    | grep -qw "$name"; then
    echo "search attribute $name exists"
  else
    temporal operator search-attribute create --address "$TEMPORAL_ADDRESS" \
      --namespace "$NAMESPACE" --name "$name" --type "$type"
  fi
done
echo "namespace $NAMESPACE is ready"
