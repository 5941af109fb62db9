// Package scaletest runs asynq against real Redis Sentinel and Redis Cluster
// fixtures, to find out which features survive failover and sharding; it holds only tests.
package scaletest
