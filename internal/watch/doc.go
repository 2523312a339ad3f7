// Package watch is lbd's boundary with the Kubernetes API: client-go
// informers on Services, EndpointSlices and Nodes, converted at the boundary
// into small lbd values, and the writer for Service status and Events. Only
// this package and election import k8s.io/...; a test keeps it so.
package watch
