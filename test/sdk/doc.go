// Package sdk checks that Dapr's workflow SDKs run unchanged against `weft serve`
// over the durabletask gRPC "sidecar" protocol (service TaskHubSidecarService):
//
//   - the durabletask-go client and worker (github.com/microsoft/durabletask-go
//     v0.6.0), the protocol's reference Go implementation;
//   - the Dapr Go SDK's workflow package (github.com/dapr/go-sdk v1.11.0), a thin
//     layer over durabletask-go that Dapr users write against;
//   - a worker process running durabletask-go that is SIGKILLed in the middle of
//     its workflows and replaced by a second one (internal/worker);
//   - a JavaScript worker on the npm package @dapr/durabletask-js 1.0.0.
//
// Each test builds nothing itself: TestMain builds cmd/weft from the main module
// and the worker program once, and every test starts its own `weft serve --grpc
// 127.0.0.1:0` on a fresh data directory, connects the SDK's worker to it and
// drives it with the SDK's client, exactly as an application would.
//
// This is a module of its own so that the main module never depends on the SDKs,
// and so that no binary links weft's copy of the protocol together with
// durabletask-go's: both register the same unqualified protobuf names. The test
// module does not depend on github.com/weftrt/weft at all; it only runs the binary.
//
// What the SDKs used here do not offer is not tested through them: durabletask-go
// v0.6.0's client has no QueryInstances; the Dapr Go SDK v1.11.0 has no retry
// policies, no custom status and no id-reuse policy of its own, and its
// ContinueAsNew always keeps unprocessed events (it calls the durabletask option
// unconditionally), so its continue-as-new tests keep events. Neither client
// copies a failed instance's failure details into its metadata, so the tests read
// them with a raw GetInstance call (other SDKs show them to their users).
//
// Run from this directory:
//
//	go test -count=1 -timeout 5m ./...
//
// The JavaScript test needs node and npm on PATH (it is skipped, saying so, when
// they are missing) and installs the npm package once into the user cache directory.
package sdk
